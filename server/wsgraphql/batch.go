package wsgraphql

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/server/substream"
)

// batchLimit is how many bytes a held batchConn collects before it writes them out anyway:
// enough for dozens of typical next frames in one write(2), small enough that a burst of
// large frames does not pin memory.
const batchLimit = 32 << 10

// batchConn is the socket under gorilla's Conn, and the way the connection's writer sends its
// text messages. The writer frames them itself (writeText): a server's text frame is a header
// of two to ten bytes and the payload, unmasked and, without compression, unchanged, so going
// through gorilla would only copy each message twice and set the socket's deadline once per
// message. gorilla still writes the control frames (pings, pongs, close), each with one Write.
//
// While the writer holds the batchConn (hold … release), frames collect in a pooled buffer and
// release sends them with one write(2). Frames written by other goroutines meanwhile (gorilla's
// pong from the reader) join the batch in order. Outside a batch writes go straight through.
type batchConn struct {
	net.Conn
	pool *sync.Pool
	// timeout bounds each write(2) of the writer's frames. The socket's deadline is moved
	// only when less than three quarters of it are left, not for every write.
	timeout time.Duration

	mu        sync.Mutex
	holding   bool
	buf       *[]byte
	err       error     // sticky: the socket failed in a buffered write
	closeSent bool      // gorilla wrote a close frame: no message may follow it
	deadline  time.Time // the socket's write deadline as last set
}

func newBatchConn(c net.Conn, pool *sync.Pool, timeout time.Duration) *batchConn {
	return &batchConn{Conn: c, pool: pool, timeout: timeout}
}

// SetWriteDeadline implements net.Conn; gorilla calls it before each control frame.
func (b *batchConn) SetWriteDeadline(t time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.Conn.SetWriteDeadline(t)
	b.deadline = t
	if err != nil {
		b.deadline = time.Time{}
	}
	return err
}

// Write implements net.Conn for gorilla, which writes its handshake answer and then each control
// frame with one call: a write that starts with the first byte of a close frame is one.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if len(p) > 0 && p[0] == 0x80|websocket.CloseMessage {
		b.closeSent = true
	}
	if !b.holding {
		n, err := b.Conn.Write(p)
		if err != nil {
			b.err = err
		}
		return n, err
	}
	buf := b.bufLocked()
	*buf = append(*buf, p...)
	if err := b.spillLocked(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeText sends one text message, head followed by tail, as a single final frame. After a
// close frame it sends nothing and returns websocket.ErrCloseSent, as gorilla would.
func (b *batchConn) writeText(head, tail []byte) error {
	return b.writeFrames([]substream.Frame{{Data: head, Tail: tail}})
}

// writeFrames sends frames as text messages, one final frame each, with one lock for all of
// them.
func (b *batchConn) writeFrames(frames []substream.Frame) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	if b.closeSent {
		return websocket.ErrCloseSent
	}
	for _, f := range frames {
		buf := appendTextHeader(*b.bufLocked(), len(f.Data)+len(f.Tail))
		*b.buf = append(append(buf, f.Data...), f.Tail...)
		if err := b.spillLocked(); err != nil {
			return err
		}
	}
	if !b.holding {
		err := b.writeOutLocked()
		b.putBufLocked()
		return err
	}
	return nil
}

// appendTextHeader appends the header of an unmasked final text frame of n payload bytes
// (RFC 6455 §5.2).
func appendTextHeader(buf []byte, n int) []byte {
	const finText = 0x80 | websocket.TextMessage
	switch {
	case n < 126:
		return append(buf, finText, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(buf, finText, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(buf, finText, 127), uint64(n))
	}
}

// hold starts a batch: writes are collected until release.
func (b *batchConn) hold() {
	b.mu.Lock()
	b.holding = true
	b.mu.Unlock()
}

// release ends a batch and writes what it collected; an error means the socket failed.
func (b *batchConn) release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holding = false
	err := b.writeOutLocked()
	b.putBufLocked()
	return err
}

// bufLocked returns the batch buffer, taking one from the pool if there is none.
func (b *batchConn) bufLocked() *[]byte {
	if b.buf == nil {
		if v, ok := b.pool.Get().(*[]byte); ok {
			b.buf = v
		} else {
			buf := make([]byte, 0, batchLimit)
			b.buf = &buf
		}
	}
	return b.buf
}

// putBufLocked gives an emptied buffer back to the pool, unless a huge message grew it.
func (b *batchConn) putBufLocked() {
	if b.buf == nil {
		return
	}
	if cap(*b.buf) <= 2*batchLimit {
		*b.buf = (*b.buf)[:0]
		b.pool.Put(b.buf)
	}
	b.buf = nil
}

// spillLocked writes the batch out once it reached batchLimit.
func (b *batchConn) spillLocked() error {
	if len(*b.buf) < batchLimit {
		return nil
	}
	return b.writeOutLocked()
}

func (b *batchConn) writeOutLocked() error {
	if b.err != nil {
		return b.err
	}
	if b.buf == nil || len(*b.buf) == 0 {
		return nil
	}
	if now := time.Now(); b.timeout > 0 && (b.deadline.IsZero() || b.deadline.Sub(now) < b.timeout*3/4) {
		b.deadline = now.Add(b.timeout)
		if err := b.Conn.SetWriteDeadline(b.deadline); err != nil {
			b.err = err
			return err
		}
	}
	_, err := b.Conn.Write(*b.buf)
	*b.buf = (*b.buf)[:0]
	if err != nil {
		b.err = err
	}
	return err
}

// hijackWriter hands gorilla's Upgrader a batchConn in place of the hijacked socket.
type hijackWriter struct {
	http.ResponseWriter
	wrap func(net.Conn) net.Conn
}

// Hijack implements http.Hijacker.
func (h hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return h.wrap(c), brw, nil
}
