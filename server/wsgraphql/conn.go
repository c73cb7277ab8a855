package wsgraphql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/server/substream"
)

// maxControl bounds the connection-level frames (pong, ack, …) waiting for the writer: a
// client that floods pings without reading the answers is dropped rather than buffered.
const maxControl = 64

// conn is one WebSocket connection. The goroutine that runs serve reads; the writer goroutine
// writes every frame, runs the timers and sends the close frame. They share the fields under mu.
type conn struct {
	t     *Transport
	log   *slog.Logger
	ws    *websocket.Conn
	net   net.Conn   // the socket itself
	batch *batchConn // between gorilla and net: the writer's batches of frames
	// scratch is the writer's buffer for joining a frame's parts, held during a flush only.
	scratch *[]byte
	exec    graphql.GraphExecutor
	header  http.Header
	legacy  bool

	// ctx is cancelled when the connection ends; it is the parent of every operation.
	ctx    context.Context
	cancel context.CancelFunc

	wake       chan struct{} // capacity 1: something for the writer
	stop       chan struct{} // closed when the reader is done: the writer exits
	writerDone chan struct{}
	ended      chan struct{} // closed when everything of the connection has finished
	pumps      sync.WaitGroup
	activity   atomic.Bool // something was read since the writer last looked

	mu           sync.Mutex
	initReceived bool
	acked        bool
	authCtx      context.Context
	closing      bool
	closeCode    int
	closeText    string
	ops          map[string]*operation
	ready        []*operation // operations whose queue has something for the writer, in order
	control      [][]byte
}

// operation is one subscribe/start of the connection.
type operation struct {
	id     string
	cancel context.CancelFunc
	q      *substream.Queue
}

func newConn(t *Transport, ws *websocket.Conn, r *http.Request, exec graphql.GraphExecutor, batch *batchConn) *conn {
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	c := &conn{
		t:          t,
		log:        t.log.With("remote", r.RemoteAddr, "subprotocol", ws.Subprotocol()),
		ws:         ws,
		net:        batch.Conn,
		batch:      batch,
		exec:       exec,
		header:     r.Header,
		legacy:     ws.Subprotocol() == ProtocolLegacyWS,
		ctx:        ctx,
		cancel:     cancel,
		wake:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		writerDone: make(chan struct{}),
		ended:      make(chan struct{}),
		ops:        make(map[string]*operation),
	}
	return c
}

// serve runs the connection: the calling goroutine reads until the socket ends, then tears
// everything down. registered is false when the transport was already shutting down.
func (c *conn) serve(registered bool) {
	c.ws.SetReadLimit(c.t.cfg.ReadLimit)
	c.ws.SetPongHandler(func(string) error {
		c.activity.Store(true)
		return nil
	})
	// WebSocket-level pings (some clients' keep-alive) prove the peer alive too; the answer
	// is gorilla's default one.
	c.ws.SetPingHandler(func(data string) error {
		c.activity.Store(true)
		err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(c.t.cfg.WriteTimeout))
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil
		}
		return err
	})
	go c.writeLoop()
	switch {
	case !registered:
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	case c.ws.Subprotocol() == "":
		c.closeWith(CloseProtocolRejected, "subprotocol not acceptable")
	}

	err := c.readLoop()

	c.cancel()
	// Operations normally inherit the cancellation from c.ctx, but Authenticate may have
	// returned a context not derived from it; cancel them directly so the pumps end.
	c.mu.Lock()
	for _, op := range c.ops {
		op.cancel()
	}
	c.mu.Unlock()
	close(c.stop)
	<-c.writerDone
	if errors.Is(err, websocket.ErrReadLimit) {
		// gorilla sent 1009 while the rest of the oversized message is still arriving; read
		// it away so that closing does not reset the connection before the peer sees 1009.
		c.linger()
	}
	_ = c.ws.Close()
	c.pumps.Wait()
	if registered {
		c.t.unregister(c)
	}
	close(c.ended)
	c.log.Debug("websocket closed", "err", err)
}

// readLoop reads messages until the socket fails or the close handshake ends.
func (c *conn) readLoop() error {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return err
		}
		c.activity.Store(true)
		c.mu.Lock()
		closing := c.closing
		c.mu.Unlock()
		if closing {
			continue // waiting for the peer's close frame; everything else is moot
		}
		c.handle(data)
	}
}

// handle handles one client message. A panic (in a hook, say) is logged and closes the socket
// with 1011 instead of crashing the server.
func (c *conn) handle(data []byte) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("websocket message handling panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			c.closeWith(websocket.CloseInternalServerErr, "internal server error")
		}
	}()
	if c.legacy {
		c.handleLegacy(data)
	} else {
		c.handleTransportWS(data)
	}
}

func (c *conn) linger() {
	_ = c.net.SetReadDeadline(time.Now().Add(closeGrace))
	if tcp, ok := c.net.(interface{ CloseWrite() error }); ok {
		_ = tcp.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, c.net)
}

// closeWith starts closing the socket with code: the writer sends what connection-level
// frames are pending (such as connection_error), then the close frame, and the reader waits a
// short grace for the peer's answer. Operations' frames not yet written are dropped. Only the
// first call counts.
func (c *conn) closeWith(code int, text string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.closeCode, c.closeText = true, code, text
	c.mu.Unlock()
	c.signal()
	c.log.Debug("closing websocket", "code", code, "reason", text)
}

// kill drops the socket without a close handshake (dead peer, blocked writes).
func (c *conn) kill() {
	_ = c.net.Close()
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sendControl queues a connection-level frame ahead of operations' frames.
func (c *conn) sendControl(frame []byte) {
	c.mu.Lock()
	if len(c.control) >= maxControl {
		c.mu.Unlock()
		c.log.Info("websocket peer does not read its control frames; dropping it")
		c.kill()
		return
	}
	c.control = append(c.control, frame)
	c.mu.Unlock()
	c.signal()
}

// schedule puts op in the writer's round-robin; its queue calls this when it has something.
func (c *conn) schedule(op *operation) {
	c.mu.Lock()
	c.ready = append(c.ready, op)
	c.mu.Unlock()
	c.signal()
}

// writeLoop is the connection's only writer. Besides frames it runs the init timeout, pings or
// keep-alives, and rechecks of the authentication.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	cfg := c.t.cfg

	initTimer := time.NewTimer(cfg.InitTimeout)
	defer initTimer.Stop()
	beat := cfg.PingInterval
	if c.legacy {
		beat = cfg.KeepAliveInterval
	}
	beatTicker := time.NewTicker(beat)
	defer beatTicker.Stop()
	var recheck <-chan time.Time
	if cfg.Recheck != nil {
		tk := time.NewTicker(cfg.RecheckInterval)
		defer tk.Stop()
		recheck = tk.C
	}
	missed := 0

	for {
		if !c.flush() {
			return
		}
		select {
		case <-c.stop:
			return
		case <-c.wake:
		case <-initTimer.C:
			c.mu.Lock()
			received := c.initReceived
			c.mu.Unlock()
			if !received {
				c.closeWith(CloseInitTimeout, "connection initialisation timeout")
			}
		case <-beatTicker.C:
			if c.activity.Swap(false) {
				missed = 0
			}
			if missed >= 2 {
				c.log.Info("websocket peer missed two pings; dropping it")
				c.kill()
				return
			}
			missed++
			if !c.heartbeat() {
				return
			}
		case <-recheck:
			c.mu.Lock()
			acked, closing, ctx := c.acked, c.closing, c.authCtx
			c.mu.Unlock()
			if acked && !closing {
				if err := cfg.Recheck(ctx); err != nil {
					c.log.Info("websocket authentication no longer valid", "err", err)
					c.closeWith(CloseForbidden, "forbidden")
				}
			}
		}
	}
}

// heartbeat sends a ping (graphql-transport-ws) or a ka plus a WebSocket ping (legacy, whose
// protocol has no ping of its own).
func (c *conn) heartbeat() bool {
	c.mu.Lock()
	acked, closing := c.acked, c.closing
	c.mu.Unlock()
	if closing {
		return true
	}
	if !c.legacy {
		return c.write(msgPing)
	}
	if acked && !c.write(msgKeepAlive) {
		return false
	}
	return c.check(c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.t.cfg.WriteTimeout)))
}

// flushBatch is how many frames flush writes before it lets the timers run: a busy stream
// must not starve pings and authentication rechecks.
const flushBatch = 64

// flush writes what is pending, up to flushBatch frames (then it wakes itself up again), with
// as few write(2) calls as the batchConn manages. It returns false when the writer must exit:
// the socket failed, or the close frame has been sent.
func (c *conn) flush() bool {
	c.batch.hold()
	ok := c.flushFrames()
	if c.scratch != nil {
		if cap(*c.scratch) <= batchLimit {
			c.t.scratchBufs.Put(c.scratch)
		}
		c.scratch = nil
	}
	if err := c.batch.release(); err != nil {
		c.log.Debug("websocket write failed; dropping it", "err", err)
		c.kill()
		return false
	}
	return ok
}

// flushFrames is flush's work, inside one batch.
func (c *conn) flushFrames() bool {
	for n := 0; ; n++ {
		if n == flushBatch {
			c.signal()
			return true
		}
		c.mu.Lock()
		if len(c.control) > 0 {
			frame := c.control[0]
			c.control[0] = nil
			c.control = c.control[1:]
			if len(c.control) == 0 {
				c.control = nil
			}
			c.mu.Unlock()
			if !c.write(frame) {
				return false
			}
			continue
		}
		if c.closing {
			code, text := c.closeCode, c.closeText
			c.mu.Unlock()
			c.sendClose(code, text)
			return false
		}
		if len(c.ready) == 0 {
			c.ready = nil
			c.mu.Unlock()
			return true
		}
		op := c.ready[0]
		c.ready[0] = nil
		c.ready = c.ready[1:]
		c.mu.Unlock()

		f, st, more := op.q.Pop()
		var frame []byte
		switch st {
		case substream.Data:
			frame = f.Data
			if f.Tail != nil {
				frame = c.join(f.Data, f.Tail)
			}
		case substream.Final:
			frame = f.Data
			c.finish(op)
		case substream.Slow:
			frame = encodeErrors(op.id, gqlErrors(substream.SlowConsumerError(f.Cursor)))
			c.finish(op)
			c.log.Info("subscription dropped: slow consumer", "id", op.id, "cursor", f.Cursor)
		}
		if frame != nil && !c.write(frame) {
			return false
		}
		if more {
			c.mu.Lock()
			c.ready = append(c.ready, op)
			c.mu.Unlock()
		}
	}
}

// join returns head followed by tail in the writer's scratch buffer, valid until the next
// join: gorilla copies a message before WriteMessage returns. The buffer is borrowed from the
// transport for one flush, so an idle connection holds none.
func (c *conn) join(head, tail []byte) []byte {
	if c.scratch == nil {
		if v, ok := c.t.scratchBufs.Get().(*[]byte); ok {
			c.scratch = v
		} else {
			buf := make([]byte, 0, 1024)
			c.scratch = &buf
		}
	}
	b := append(append((*c.scratch)[:0], head...), tail...)
	*c.scratch = b
	return b
}

// finish forgets an operation whose last frame the writer took, freeing its id.
func (c *conn) finish(op *operation) {
	op.cancel()
	c.mu.Lock()
	if c.ops[op.id] == op {
		delete(c.ops, op.id)
	}
	c.mu.Unlock()
}

// write sends one text message under the write deadline. On failure the socket is dropped,
// unless a close frame went out already (then the reader is finishing the close handshake).
func (c *conn) write(frame []byte) bool {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.t.cfg.WriteTimeout))
	return c.check(c.ws.WriteMessage(websocket.TextMessage, frame))
}

func (c *conn) check(err error) bool {
	if err == nil {
		return true
	}
	if !errors.Is(err, websocket.ErrCloseSent) {
		c.log.Debug("websocket write failed; dropping it", "err", err)
		c.kill()
	}
	return false
}

// sendClose writes the close frame and gives the peer closeGrace to answer it.
func (c *conn) sendClose(code int, text string) {
	msg := websocket.FormatCloseMessage(code, text)
	if c.check(c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.t.cfg.WriteTimeout))) {
		_ = c.net.SetReadDeadline(time.Now().Add(closeGrace))
	}
}
