package wsgraphql

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// batchLimit is how many bytes a held batchConn collects before it writes them out anyway:
// enough for dozens of typical next frames in one write(2), small enough that a burst of
// large frames does not pin memory.
const batchLimit = 32 << 10

// batchConn is the socket under gorilla's Conn. gorilla writes every message with its own
// write(2); while the connection's writer holds the batchConn (hold … release), writes collect
// in a pooled buffer instead, and release sends them with one write. Frames written by other
// goroutines meanwhile (gorilla's pong from the reader) join the batch in the order gorilla
// serialised them. Outside a batch writes go straight through.
//
// Write deadlines still hold: gorilla sets the deadline on this conn (and so on the socket)
// before each message, and the buffered bytes are written under the last one set.
type batchConn struct {
	net.Conn
	pool *sync.Pool

	mu      sync.Mutex
	holding bool
	buf     *[]byte
	err     error // sticky: the socket failed in a buffered write
}

func newBatchConn(c net.Conn, pool *sync.Pool) *batchConn {
	return &batchConn{Conn: c, pool: pool}
}

// Write implements net.Conn.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if !b.holding {
		return b.Conn.Write(p)
	}
	if b.buf == nil {
		if v, ok := b.pool.Get().(*[]byte); ok {
			b.buf = v
		} else {
			buf := make([]byte, 0, batchLimit)
			b.buf = &buf
		}
	}
	*b.buf = append(*b.buf, p...)
	if len(*b.buf) >= batchLimit {
		if err := b.writeOutLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
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
	if b.buf != nil {
		if cap(*b.buf) <= 2*batchLimit {
			*b.buf = (*b.buf)[:0]
			b.pool.Put(b.buf)
		}
		b.buf = nil
	}
	return err
}

func (b *batchConn) writeOutLocked() error {
	if b.err != nil {
		return b.err
	}
	if b.buf == nil || len(*b.buf) == 0 {
		return nil
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
