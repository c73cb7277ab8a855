package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// fanoutResult is what scenario 1 measured.
type fanoutResult struct {
	framesPerSec, rawPerSec float64
	frames                  int64
	note                    string
}

// runFanout is scenario 1: subs graphql-transport-ws subscribers receive events published events;
// delivered frames/s against a raw gorilla/websocket broadcast of the same frames to as many
// clients.
//
// eventgate ends a subscription whose queue overflows (SLOW_CONSUMER), so the publisher keeps
// at most window events ahead of the slowest subscriber, below the per-subscription buffer; the
// raw broadcast has no such policy and simply writes as fast as TCP lets it.
func runFanout(ctx context.Context, e *env) (fanoutResult, error) {
	var res fanoutResult
	o := e.opts
	t, err := e.start(ctx)
	if err != nil {
		return res, err
	}
	defer e.stopTarget(t)

	e.log.printf("scenario 1: connecting %d subscribers", o.fanoutSubs)
	s, err := openSwarm(ctx, swarmConfig{url: wsURL(t.url), n: o.fanoutSubs, token: t.token, captureFirst: true, dialers: 32})
	if err != nil {
		return res, fmt.Errorf("subscribers: %w", err)
	}
	defer s.close()
	if err := settle(ctx, t, s); err != nil {
		return res, err
	}

	base := s.counts()
	e.log.printf("scenario 1: publishing %d events (window %d)", o.fanoutEvents, o.fanoutWindow)
	e.prof.start("1-fanout")
	began := time.Now()
	published, seq, lastCheck := 0, 0, began
	for published < o.fanoutEvents {
		n := min(o.fanoutBatch, o.fanoutEvents-published)
		if !s.allAtLeast(base, int64(published+n-o.fanoutWindow)) {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(200 * time.Microsecond):
			}
			if time.Since(lastCheck) > 100*time.Millisecond {
				lastCheck = time.Now()
				if lastCheck.Sub(began) > 5*time.Minute {
					return res, errors.New("publisher starved for 5 minutes")
				}
				if dead, _ := s.trouble(); dead > 0 {
					break // a subscriber was dropped: the window would never open again
				}
			}
			continue
		}
		batch := make([]restEvent, n)
		for i := range batch {
			seq++
			batch[i] = restEvent{Type: "user.created", Payload: map[string]any{"user_id": seq, "username": fmt.Sprintf("fanout-%d", seq)}}
		}
		if err := t.publishREST(ctx, batch); err != nil {
			return res, err
		}
		published += n
	}
	waitErr := s.waitAll(ctx, base, int64(published), time.Minute)
	elapsed := time.Since(began)
	e.prof.stop()
	res.frames = s.totalSince(base)
	res.framesPerSec = float64(res.frames) / elapsed.Seconds()
	dead, errs := s.trouble()
	if dead > 0 || errs > 0 || waitErr != nil || published < o.fanoutEvents {
		res.note = fmt.Sprintf("%d of %d events published, %d sockets ended, %d error frames (SLOW_CONSUMER); %v", published, o.fanoutEvents, dead, errs, waitErr)
	}
	e.log.printf("scenario 1: eventgate delivered %d frames in %v: %.0f frames/s", res.frames, elapsed.Round(time.Millisecond), res.framesPerSec)

	// The frames eventgate sent for the measured events, exactly as the first client got them.
	first := s.clients[0]
	s.close()
	// The baseline runs alone: eventgate, idle now, would still take its share of the machine.
	e.stopTarget(t)
	if int64(len(first.captured)) < int64(published) {
		return res, fmt.Errorf("client 0 captured %d frames, want %d", len(first.captured), published)
	}
	frames := first.captured[len(first.captured)-published:]

	e.log.printf("scenario 1: raw broadcast of the same %d frames to %d clients", len(frames), o.fanoutSubs)
	res.rawPerSec, err = rawBroadcast(ctx, o.fanoutSubs, frames)
	if err != nil {
		return res, fmt.Errorf("raw broadcast: %w", err)
	}
	e.log.printf("scenario 1: raw %.0f frames/s", res.rawPerSec)
	return res, nil
}

// settle makes sure every subscription is live: it publishes probe events until each client has
// received one (a subscribe is asynchronous, with no acknowledgement), then waits for the last
// probes to arrive so that they do not count later.
func settle(ctx context.Context, t *target, s *swarm) error {
	zero := make([]int64, len(s.clients))
	deadline := time.Now().Add(2 * time.Minute)
	for !s.allAtLeast(zero, 1) {
		if time.Now().After(deadline) {
			n, _ := s.minSince(zero)
			return fmt.Errorf("subscriptions not live after 2 minutes (slowest client has %d probe frames)", n)
		}
		if err := t.publishREST(ctx, []restEvent{{Type: "user.created", Payload: map[string]any{"user_id": 0, "username": "probe"}}}); err != nil {
			return err
		}
		// Spaced so that even ten thousand subscribers get one before the next is sent.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	// Probe frames still queued arrive within this; none is published any more.
	before := s.counts()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		now := s.counts()
		if equal(before, now) {
			return nil
		}
		before = now
	}
}

func equal(a, b []int64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") + "/query" }

// rawBroadcast serves n WebSocket clients of this process from a plain gorilla/websocket server
// that writes frames to each of them as prepared messages (encoded once, shared by every
// socket), one writer goroutine per socket. It returns delivered frames/s: from the start of
// the broadcast until the last client has read the last frame.
func rawBroadcast(ctx context.Context, n int, frames [][]byte) (float64, error) {
	prepared := make([]*websocket.PreparedMessage, len(frames))
	for i, f := range frames {
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, f)
		if err != nil {
			return 0, fmt.Errorf("prepare frame: %w", err)
		}
		prepared[i] = pm
	}
	up := websocket.Upgrader{Subprotocols: []string{"graphql-transport-ws"}}
	conns := make(chan *websocket.Conn, n)
	srv, err := serveLocal(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conns <- ws
	}))
	if err != nil {
		return 0, err
	}
	defer srv.close()

	s, err := openSwarm(ctx, swarmConfig{url: "ws://" + srv.addr + "/", n: n, dialers: 32})
	if err != nil {
		return 0, err
	}
	defer s.close()
	server := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, ws := range server {
			ws.Close()
		}
	}()
	for range n {
		select {
		case ws := <-conns:
			server = append(server, ws)
		case <-time.After(30 * time.Second):
			return 0, fmt.Errorf("only %d of %d raw clients reached the server", len(server), n)
		}
	}

	base := s.counts()
	var writers sync.WaitGroup
	writeErrs := make(chan error, n)
	began := time.Now()
	for _, ws := range server {
		writers.Go(func() {
			for _, pm := range prepared {
				if err := ws.WritePreparedMessage(pm); err != nil {
					writeErrs <- err
					return
				}
			}
		})
	}
	err = s.waitAll(ctx, base, int64(len(frames)), time.Minute)
	elapsed := time.Since(began)
	if err != nil {
		for _, ws := range server {
			ws.Close() // unblocks writers stuck on a client that stopped reading
		}
	}
	writers.Wait()
	close(writeErrs)
	if err != nil {
		return 0, err
	}
	if werr := <-writeErrs; werr != nil {
		return 0, fmt.Errorf("write: %w", werr)
	}
	return float64(s.totalSince(base)) / elapsed.Seconds(), nil
}
