package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// subscriptionQuery is what every subscriber of the load tests asks for: the fields a client
// of the old /ws socket got.
const subscriptionQuery = `subscription { events(types: ["user.created"]) { id cursor type occurredAt payload } }`

// Byte patterns that classify a server message without decoding it: the tool must read frames
// far faster than eventgate writes them, so it looks at bytes only.
const (
	typeNext  = `"type":"next"`
	typePing  = `"type":"ping"`
	typeError = `"type":"error"`
	sentKey   = `"sent_us":`
	msgPong   = `{"type":"pong"}`
)

// client is one WebSocket subscriber. Its reader goroutine is the only writer of its fields
// except the atomics; the slices are read after the swarm's readers have ended.
type client struct {
	ws     *websocket.Conn
	frames atomic.Int64 // next frames received
	errs   atomic.Int64 // error frames (SLOW_CONSUMER, …)
	dead   atomic.Bool  // the socket ended
	// latUS holds publish→receive latencies (µs) of frames sent at or after swarm.since.
	latUS []int64
	// captured holds copies of every frame received, when the swarm captures for this client.
	captured [][]byte
	capture  bool
}

// gone reports whether the client will receive nothing more: its socket ended, or its
// subscription ended with an error (SLOW_CONSUMER).
func (c *client) gone() bool { return c.dead.Load() || c.errs.Load() > 0 }

// swarm is a set of WebSocket clients, each with a reader goroutine that the swarm owns: close
// ends them.
type swarm struct {
	clients []*client
	// since (unix µs) is when latencies start to count; 0 = not yet.
	since   atomic.Int64
	latency bool
	readers sync.WaitGroup
	// behind is allAtLeast's hint: the client that was behind last time.
	behind int
}

// swarmConfig says how to open the clients.
type swarmConfig struct {
	url   string // ws://…
	n     int
	token string // when set: graphql-transport-ws connection_init with it, then subscribe
	// latency makes readers parse "sent_us" from frames.
	latency bool
	// captureFirst keeps a copy of every frame client 0 receives.
	captureFirst bool
	// dialers is how many clients connect at once (the listen backlog is finite).
	dialers int
}

// openSwarm connects n clients. With a token each completes connection_init and subscribes with
// id "1" to subscriptionQuery, so every subscriber's frames are byte-identical.
func openSwarm(ctx context.Context, cfg swarmConfig) (*swarm, error) {
	s := &swarm{clients: make([]*client, cfg.n), latency: cfg.latency}
	dialer := websocket.Dialer{
		Subprotocols:     []string{"graphql-transport-ws"},
		HandshakeTimeout: 30 * time.Second,
		// Small buffers: ten thousand clients live in this process too.
		ReadBufferSize:  2048,
		WriteBufferSize: 512,
	}
	var init, sub []byte
	if cfg.token != "" {
		init, _ = json.Marshal(map[string]any{"type": "connection_init", "payload": map[string]string{"Authorization": "Bearer " + cfg.token}})
		sub, _ = json.Marshal(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": subscriptionQuery}})
	}
	next := atomic.Int64{}
	errs := make(chan error, cfg.dialers)
	var wg sync.WaitGroup
	for range max(cfg.dialers, 1) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.n || ctx.Err() != nil {
					return
				}
				c, err := dialClient(ctx, &dialer, cfg.url, init, sub)
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					next.Store(int64(cfg.n)) // stop the other dialers
					return
				}
				c.capture = cfg.captureFirst && i == 0
				s.clients[i] = c
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		s.closeOpen()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		s.closeOpen()
		return nil, err
	}
	for _, c := range s.clients {
		s.readers.Go(func() { s.read(c) })
	}
	return s, nil
}

func dialClient(ctx context.Context, d *websocket.Dialer, url string, init, sub []byte) (*client, error) {
	ws, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	resp.Body.Close()
	c := &client{ws: ws}
	if init == nil {
		return c, nil
	}
	if err := ws.WriteMessage(websocket.TextMessage, init); err != nil {
		ws.Close()
		return nil, fmt.Errorf("connection_init: %w", err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, ack, err := ws.ReadMessage()
	if err != nil || !bytes.Contains(ack, []byte(`"connection_ack"`)) {
		ws.Close()
		return nil, fmt.Errorf("want connection_ack, got %q (%v)", ack, err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	if err := ws.WriteMessage(websocket.TextMessage, sub); err != nil {
		ws.Close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return c, nil
}

// read is a client's reader: it counts frames, answers pings and records latencies. It reuses
// one buffer, so reading costs no allocation per frame.
func (s *swarm) read(c *client) {
	defer c.dead.Store(true)
	buf := bytes.NewBuffer(make([]byte, 0, 2048))
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return
		}
		frame := buf.Bytes()
		head := frame[:min(len(frame), 48)]
		switch {
		case bytes.Contains(head, []byte(typeNext)):
			if s.latency {
				if sent := sentMicros(frame); sent > 0 && sent >= s.since.Load() && s.since.Load() > 0 {
					c.latUS = append(c.latUS, time.Now().UnixMicro()-sent)
				}
			}
			if c.capture {
				c.captured = append(c.captured, bytes.Clone(frame))
			}
			c.frames.Add(1)
		case bytes.Contains(head, []byte(typePing)):
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte(msgPong)); err != nil {
				return
			}
		case bytes.Contains(head, []byte(typeError)):
			c.errs.Add(1)
		}
	}
}

// sentMicros finds "sent_us":<n> in a frame; 0 when absent.
func sentMicros(frame []byte) int64 {
	i := bytes.Index(frame, []byte(sentKey))
	if i < 0 {
		return 0
	}
	rest := frame[i+len(sentKey):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// counts returns the frames each client has received.
func (s *swarm) counts() []int64 {
	out := make([]int64, len(s.clients))
	for i, c := range s.clients {
		out[i] = c.frames.Load()
	}
	return out
}

// minSince is the fewest frames any live client received beyond base (its counts() snapshot).
// Clients that died are skipped; ok is false when none is alive.
func (s *swarm) minSince(base []int64) (n int64, ok bool) {
	n = -1
	for i, c := range s.clients {
		if c.gone() {
			continue
		}
		if got := c.frames.Load() - base[i]; n < 0 || got < n {
			n = got
		}
	}
	return n, n >= 0
}

// totalSince is how many frames all clients received beyond base.
func (s *swarm) totalSince(base []int64) int64 {
	var t int64
	for i, c := range s.clients {
		t += c.frames.Load() - base[i]
	}
	return t
}

// trouble counts dead clients and error frames.
func (s *swarm) trouble() (dead, errs int) {
	for _, c := range s.clients {
		if c.dead.Load() {
			dead++
		}
		errs += int(c.errs.Load())
	}
	return dead, errs
}

// allAtLeast reports whether every client still subscribed received at least want frames beyond base.
// It starts with the client that was behind last time and stops at the first one still behind,
// so polling it often costs little even with thousands of clients. One goroutine at a time.
func (s *swarm) allAtLeast(base []int64, want int64) bool {
	n := len(s.clients)
	for k := range n {
		i := (s.behind + k) % n
		c := s.clients[i]
		if !c.gone() && c.frames.Load()-base[i] < want {
			s.behind = i
			return false
		}
	}
	return true
}

// waitAll waits until every live client received at least want frames beyond base.
func (s *swarm) waitAll(ctx context.Context, base []int64, want int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !s.allAtLeast(base, want) {
		if time.Now().After(deadline) {
			n, _ := s.minSince(base)
			dead, errs := s.trouble()
			return fmt.Errorf("after %v the slowest client had %d of %d frames (%d sockets ended, %d error frames)", timeout, n, want, dead, errs)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	if dead, _ := s.trouble(); dead == len(s.clients) {
		return fmt.Errorf("every client's socket ended")
	}
	return nil
}

// close closes every socket and waits for the readers; afterwards the clients' slices may be read.
func (s *swarm) close() {
	s.closeOpen()
	s.readers.Wait()
}

func (s *swarm) closeOpen() {
	for _, c := range s.clients {
		if c != nil {
			_ = c.ws.Close()
		}
	}
}

// latencies merges every client's latencies.
func (s *swarm) latencies() []int64 {
	var n int
	for _, c := range s.clients {
		n += len(c.latUS)
	}
	out := make([]int64, 0, n)
	for _, c := range s.clients {
		out = append(out, c.latUS...)
	}
	return out
}
