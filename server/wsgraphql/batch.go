package wsgraphql

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// batchLimit is how many bytes a held batchConn collects before it writes them out anyway:
// enough for dozens of typical next frames in one write(2), small enough that a burst of
// large frames does not pin memory.
const batchLimit = 32 << 10

// batchConn is the socket under gorilla's Conn. gorilla writes every message with its own
// write(2); while the connection's writer holds the batchConn (hold … release), writes collect
// in a pooled buffer instead, and release sends them with one write. Frames written by other
// goroutines meanwhile (gorilla's pong from the reader) join the batch in the order gorilla
// serialised them. Outside a batch writes go straight through, unless bytes of a tried batch
// are still waiting: then they queue behind those.
//
// A batch may be tried (hold(true)): release then writes only what the socket takes without
// waiting, and keeps the rest for the next, ordinary batch. That lets the goroutine that queued
// a frame write it itself, and start a writer goroutine only when the socket is full.
//
// Write deadlines still hold: gorilla sets the deadline on this conn (and so on the socket)
// before each message, and the buffered bytes are written under the last one set.
type batchConn struct {
	net.Conn
	raw  syscall.RawConn // nil when the socket has none: batches cannot be tried
	pool *sync.Pool

	mu      sync.Mutex
	holding bool
	trying  bool // the held batch is tried: Write never writes out
	buf     *[]byte
	err     error // sticky: the socket failed in a buffered write
}

func newBatchConn(c net.Conn, pool *sync.Pool) *batchConn {
	b := &batchConn{Conn: c, pool: pool}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			b.raw = raw
		}
	}
	return b
}

// Write implements net.Conn.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if !b.holding && b.buffered() == 0 {
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
	if b.holding && !b.trying && len(*b.buf) >= batchLimit {
		if err := b.writeOutLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (b *batchConn) buffered() int {
	if b.buf == nil {
		return 0
	}
	return len(*b.buf)
}

// canTry reports whether batches can be tried.
func (b *batchConn) canTry() bool { return b.raw != nil }

// hold starts a batch: writes are collected until release. try makes it a tried batch (see
// batchConn), if the socket allows.
func (b *batchConn) hold(try bool) {
	b.mu.Lock()
	b.holding, b.trying = true, try && b.raw != nil
	b.mu.Unlock()
}

// full reports whether the batch holds batchLimit bytes or more: a tried batch takes no more
// frames then, since it never writes out before release.
func (b *batchConn) full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffered() >= batchLimit
}

// release ends a batch and writes what it collected: all of it, waiting for the socket under
// the write deadline, or for a tried batch what the socket takes at once. done reports that
// nothing is left; an error means the socket failed.
func (b *batchConn) release() (done bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holding = false
	if b.trying {
		b.trying = false
		err = b.tryWriteOutLocked()
	} else {
		err = b.writeOutLocked()
	}
	if b.buffered() > 0 {
		return false, err
	}
	if b.buf != nil {
		if cap(*b.buf) <= 2*batchLimit {
			*b.buf = (*b.buf)[:0]
			b.pool.Put(b.buf)
		}
		b.buf = nil
	}
	return true, err
}

func (b *batchConn) writeOutLocked() error {
	if b.err != nil {
		return b.err
	}
	if b.buffered() == 0 {
		return nil
	}
	_, err := b.Conn.Write(*b.buf)
	*b.buf = (*b.buf)[:0]
	if err != nil {
		b.err = err
	}
	return err
}

// tryWriteOutLocked writes what the socket takes without waiting (the socket is non-blocking,
// and the function given to RawConn.Write never asks to wait) and keeps the rest.
func (b *batchConn) tryWriteOutLocked() error {
	if b.err != nil {
		return b.err
	}
	if b.buffered() == 0 {
		return nil
	}
	var n int
	var werr error
	err := b.raw.Write(func(fd uintptr) bool {
		n, werr = syscall.Write(int(fd), *b.buf)
		return true
	})
	if err == nil {
		err = werr
	}
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
		err, n = nil, 0 // the socket is full: the rest waits for the writer
	}
	if err != nil {
		b.err = err
		return err
	}
	rest := copy(*b.buf, (*b.buf)[max(n, 0):])
	*b.buf = (*b.buf)[:rest]
	return nil
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
