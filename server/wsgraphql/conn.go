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

// conn is one WebSocket connection. The goroutine that runs serve reads. Writing is done by a
// writer goroutine that runs only while there is something to write (an idle connection has
// none), one at a time; it writes every frame and sends the close frame. One timer runs the
// init timeout, the pings or keep-alives and the rechecks of the authentication (tick). They
// share the fields under mu.
type conn struct {
	t      *Transport
	ws     *websocket.Conn
	net    net.Conn   // the socket itself
	batch  *batchConn // between gorilla and net: the writer's batches of frames
	exec   graphql.GraphExecutor
	header http.Header
	legacy bool

	// ctx carries the upgrade request's values, not its cancellation; it is the parent of
	// every operation. It has no cancellation of its own: when the connection ends, serve
	// cancels each operation, so the operations' contexts need not be registered with a
	// connection-wide one.
	ctx context.Context

	ended    chan struct{} // closed when everything of the connection has finished
	pumps    sync.WaitGroup
	writers  sync.WaitGroup // the writer goroutine, while one runs
	activity atomic.Bool    // something was read since the last beat
	timer    *time.Timer    // runs tick; set under mu

	// The timer's schedule, used by tick only (ticks never overlap: each one arms the next).
	initDue, beatDue, recheckDue time.Time
	missed                       int // beats in a row without activity

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
	heartbeat    bool // a beat is due: the writer sends a ping (legacy: ka and a ping)
	writing      bool // a writer goroutine runs and will look at everything above again
	writerDone   bool // the writer is done for good: the socket failed or the close frame went out
	stopped      bool // the reader is done: no writer starts any more
}

// operation is one subscribe/start of the connection.
type operation struct {
	id     string
	cancel context.CancelFunc
	q      *substream.Queue
}

func newConn(t *Transport, ws *websocket.Conn, r *http.Request, exec graphql.GraphExecutor, batch *batchConn) *conn {
	c := &conn{
		t:      t,
		ws:     ws,
		net:    batch.Conn,
		batch:  batch,
		exec:   exec,
		header: r.Header,
		legacy: ws.Subprotocol() == ProtocolLegacyWS,
		ctx:    context.WithoutCancel(r.Context()),
		ended:  make(chan struct{}),
		ops:    make(map[string]*operation),
	}
	return c
}

// logger returns the transport's logger with the connection's attributes. It is built when
// something is logged, which is rare, rather than kept per connection.
func (c *conn) logger() *slog.Logger {
	return c.t.log.With("remote", c.net.RemoteAddr().String(), "subprotocol", c.ws.Subprotocol())
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
	c.startTimer()
	switch {
	case !registered:
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	case c.ws.Subprotocol() == "":
		c.closeWith(CloseProtocolRejected, "subprotocol not acceptable")
	}

	err := c.readLoop()

	// Every live operation is in c.ops (finished ones were cancelled as they ended).
	c.mu.Lock()
	for _, op := range c.ops {
		op.cancel()
	}
	c.stopped = true
	c.mu.Unlock()
	c.timer.Stop()
	c.writers.Wait()
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
	c.logger().Debug("websocket closed", "err", err)
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
			c.logger().Error("websocket message handling panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
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
	c.logger().Debug("closing websocket", "code", code, "reason", text)
}

// kill drops the socket without a close handshake (dead peer, blocked writes).
func (c *conn) kill() {
	_ = c.net.Close()
}

// signal makes sure a writer comes for what was just queued: it starts one unless one runs
// (it looks at the queues again before it ends) or writing is over.
func (c *conn) signal() {
	c.mu.Lock()
	start := !c.writing && !c.writerDone && !c.stopped
	if start {
		c.writing = true
		c.writers.Add(1)
	}
	c.mu.Unlock()
	if start {
		go c.writeRun()
	}
}

// sendControl queues a connection-level frame ahead of operations' frames.
func (c *conn) sendControl(frame []byte) {
	c.mu.Lock()
	if len(c.control) >= maxControl {
		c.mu.Unlock()
		c.logger().Info("websocket peer does not read its control frames; dropping it")
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

// writeRun is the connection's writer: it writes until nothing is pending, then ends. signal
// starts it; at most one runs at a time.
func (c *conn) writeRun() {
	defer c.writers.Done()
	for {
		ok := c.flush()
		c.mu.Lock()
		if !ok {
			c.writerDone = true
		}
		if !ok || c.stopped || !c.pendingLocked() {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// pendingLocked reports whether the writer has something to do.
func (c *conn) pendingLocked() bool {
	return c.heartbeat || len(c.control) > 0 || c.closing || len(c.ready) > 0
}

// startTimer arms the connection's timer for its first due time.
func (c *conn) startTimer() {
	cfg := c.t.cfg
	now := time.Now()
	c.initDue = now.Add(cfg.InitTimeout)
	beat := cfg.PingInterval
	if c.legacy {
		beat = cfg.KeepAliveInterval
	}
	c.beatDue = now.Add(beat)
	if cfg.Recheck != nil {
		c.recheckDue = now.Add(cfg.RecheckInterval)
	}
	// Under mu: tick may run before AfterFunc returns, and it reads c.timer under mu.
	c.mu.Lock()
	c.timer = time.AfterFunc(c.nextDue().Sub(now), c.tick)
	c.mu.Unlock()
}

// nextDue is the earliest of the timer's due times.
func (c *conn) nextDue() time.Time {
	next := c.beatDue
	for _, t := range []time.Time{c.initDue, c.recheckDue} {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	return next
}

// tick runs what is due — the init timeout, a beat, a recheck of the authentication — on the
// timer's goroutine, and arms the timer for what comes next.
func (c *conn) tick() {
	cfg := c.t.cfg
	now := time.Now()
	if !c.initDue.IsZero() && !now.Before(c.initDue) {
		c.initDue = time.Time{}
		c.mu.Lock()
		received := c.initReceived
		c.mu.Unlock()
		if !received {
			c.closeWith(CloseInitTimeout, "connection initialisation timeout")
		}
	}
	if !now.Before(c.beatDue) {
		beat := cfg.PingInterval
		if c.legacy {
			beat = cfg.KeepAliveInterval
		}
		c.beatDue = now.Add(beat)
		if c.activity.Swap(false) {
			c.missed = 0
		}
		if c.missed >= 2 {
			c.logger().Info("websocket peer missed two pings; dropping it")
			c.kill()
			return
		}
		c.missed++
		c.mu.Lock()
		c.heartbeat = true
		c.mu.Unlock()
		c.signal()
	}
	if !c.recheckDue.IsZero() && !now.Before(c.recheckDue) {
		c.recheckDue = now.Add(cfg.RecheckInterval)
		c.mu.Lock()
		acked, closing, ctx := c.acked, c.closing, c.authCtx
		c.mu.Unlock()
		if acked && !closing {
			// Bounded: the connection's contexts are not cancelled when it ends, and a check
			// stuck in the database must not hold the timer past the next one. A check that
			// ran out of time decides nothing; the next one does.
			ctx, cancel := context.WithTimeout(ctx, cfg.RecheckInterval)
			err := cfg.Recheck(ctx)
			timedOut := ctx.Err() != nil
			cancel()
			if err != nil && !timedOut {
				c.logger().Info("websocket authentication no longer valid", "err", err)
				c.closeWith(CloseForbidden, "forbidden")
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Once the reader is done serve stops the timer; once the writer is done nothing is left
	// for the timer to do.
	if !c.stopped && !c.writerDone {
		c.timer.Reset(time.Until(c.nextDue()))
	}
}

// sendHeartbeat sends a ping (graphql-transport-ws) or a ka plus a WebSocket ping (legacy, whose
// protocol has no ping of its own).
func (c *conn) sendHeartbeat() bool {
	c.mu.Lock()
	acked, closing := c.acked, c.closing
	c.heartbeat = false
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

// flushBatch is how many frames flush writes in one batch (one write(2) when they fit in the
// batch buffer), so that a busy stream's batches stay bounded.
const flushBatch = 64

// flush writes what is pending, up to flushBatch frames, with as few write(2) calls as the
// batchConn manages. It returns false when the writer must exit: the socket failed, or the
// close frame has been sent.
func (c *conn) flush() bool {
	c.batch.hold()
	ok := c.flushFrames()
	if err := c.batch.release(); err != nil {
		c.logger().Debug("websocket write failed; dropping it", "err", err)
		c.kill()
		return false
	}
	return ok
}

// flushFrames is flush's work, inside one batch.
func (c *conn) flushFrames() bool {
	c.mu.Lock()
	beat := c.heartbeat
	c.mu.Unlock()
	if beat && !c.sendHeartbeat() {
		return false
	}
	for n := 0; ; n++ {
		if n >= flushBatch {
			return true // writeRun comes back for the rest
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
			if cap(c.ready) > keepReady {
				c.ready = nil
			}
			c.mu.Unlock()
			return true
		}
		op := c.popReady()
		c.mu.Unlock()

		var frames [popFrames]substream.Frame
		k, more := op.q.PopFrames(frames[:])
		if k > 0 {
			n += k - 1
			if !c.check(c.batch.writeFrames(frames[:k])) {
				return false
			}
			if more {
				c.mu.Lock()
				c.ready = append(c.ready, op)
				c.mu.Unlock()
			}
			continue
		}
		f, st, more := op.q.Pop()
		var frame, tail []byte
		switch st {
		case substream.Data:
			frame, tail = f.Data, f.Tail
		case substream.Final:
			frame = f.Data
			c.finish(op)
		case substream.Slow:
			frame = encodeErrors(op.id, gqlErrors(substream.SlowConsumerError(f.Cursor)))
			c.finish(op)
			c.logger().Info("subscription dropped: slow consumer", "id", op.id, "cursor", f.Cursor)
		}
		if frame != nil && !c.check(c.batch.writeText(frame, tail)) {
			return false
		}
		if more {
			c.mu.Lock()
			c.ready = append(c.ready, op)
			c.mu.Unlock()
		}
	}
}

// popFrames is how many frames of one operation the writer takes at a time: a busy stream's
// frames go out together, and the operations of a connection still take turns.
const popFrames = 16

// keepReady is the capacity of the ready list an idle connection keeps: enough for its usual
// few operations, so that queueing one for the writer does not allocate every time.
const keepReady = 4

// popReady takes the first operation off the ready list in place, keeping its array.
func (c *conn) popReady() *operation {
	op := c.ready[0]
	n := copy(c.ready, c.ready[1:])
	c.ready[n] = nil
	c.ready = c.ready[:n]
	return op
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

// write sends one text message under the write timeout. On failure the socket is dropped,
// unless a close frame went out already (then the reader is finishing the close handshake).
func (c *conn) write(frame []byte) bool {
	return c.check(c.batch.writeText(frame, nil))
}

func (c *conn) check(err error) bool {
	if err == nil {
		return true
	}
	if !errors.Is(err, websocket.ErrCloseSent) {
		c.logger().Debug("websocket write failed; dropping it", "err", err)
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
