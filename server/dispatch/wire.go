package dispatch

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/eventgate/eventgate/server/netguard"
)

// wireClient sends webhook requests over HTTP/1.1 keep-alive connections that the request's own
// goroutine writes and reads. net/http's Transport hands each request to a writer goroutine and
// its response back from a reader goroutine, which costs three goroutine wake-ups per request;
// under load on two cores those hand-overs were a third of a request's CPU and most of its wait
// (BENCHMARKS.md, fourth session). What it does not do, the dispatcher never wanted: no
// redirects (a 3xx is the attempt's answer), no proxy (the guard checks the address dialled),
// no cookies, no HTTP/2 (one request in flight per connection is how a webhook lane sends).
//
// Every connection is dialled through the guard. A connection goes back to its endpoint's idle
// list only after a complete response whose body was read to its end and which did not ask to
// close; one idle longer than idleTimeout is closed rather than reused.
type wireClient struct {
	guard *netguard.Guard
	// tlsBase is the TLS configuration of https connections, given each its server name.
	tlsBase *tls.Config

	mu        sync.Mutex
	idle      map[string][]*wireConn // endpoint key → idle connections, most recent last
	idleCount int                    // in all lists
	perHost   int                    // idle connections kept per endpoint
	maxIdle   int                    // idle connections kept in all
	closed    bool
}

// idleTimeout is how long an idle connection is kept (net/http's default, which receivers
// expect).
const idleTimeout = 90 * time.Second

// endpoint is a webhook URL parsed once for its requests.
type endpoint struct {
	key        string // scheme and address: connections are shared per key
	addr       string // host:port to dial
	host       string // the Host header
	serverName string // for TLS
	requestURI string
	tls        bool
}

func parseEndpoint(raw string) (*endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	e := &endpoint{host: u.Host, serverName: u.Hostname(), requestURI: u.RequestURI()}
	port := u.Port()
	switch u.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		e.tls = true
		if port == "" {
			port = "443"
		}
	default:
		return nil, fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	if e.serverName == "" {
		return nil, errors.New("no host")
	}
	e.addr = net.JoinHostPort(e.serverName, port)
	e.key = u.Scheme + "://" + e.addr
	return e, nil
}

// maxResponseHead bounds the response heads (interim 1xx ones included), which are otherwise
// unbounded, and whose headers each attempt stores; net/http's limit was the same. The body
// then gets what send may read of it (maxResponseBody+maxDrain) and room for chunk framing.
const maxResponseHead = 64 << 10

// errResponseTooLarge ends a response whose head or body is longer than its budget.
var errResponseTooLarge = errors.New("response too long")

// meteredReader fails once left bytes were read.
type meteredReader struct {
	r    io.Reader
	left int
}

func (m *meteredReader) Read(p []byte) (int, error) {
	if m.left <= 0 {
		return 0, errResponseTooLarge
	}
	if len(p) > m.left {
		p = p[:m.left]
	}
	n, err := m.r.Read(p)
	m.left -= n
	return n, err
}

// wireConn is one keep-alive connection.
type wireConn struct {
	conn      net.Conn
	meter     *meteredReader // between conn and br: the bytes left for the current response
	br        *bufio.Reader
	head      []byte // the request head, rebuilt in place for each request
	idleSince time.Time
	reused    bool
}

func newWireClient(guard *netguard.Guard, perHost, maxIdle int) *wireClient {
	if guard == nil {
		guard = netguard.New(nil, nil)
	}
	return &wireClient{
		guard: guard,
		tlsBase: &tls.Config{
			NextProtos:         []string{"http/1.1"},
			MinVersion:         tls.VersionTLS12,
			ClientSessionCache: tls.NewLRUClientSessionCache(256),
		},
		idle:    map[string][]*wireConn{},
		perHost: perHost,
		maxIdle: maxIdle,
	}
}

// get returns an idle connection to e, or dials a new one (bounded by deadline).
func (c *wireClient) get(ctx context.Context, e *endpoint, deadline time.Time) (*wireConn, error) {
	now := time.Now()
	c.mu.Lock()
	for list := c.idle[e.key]; len(list) > 0; list = c.idle[e.key] {
		wc := list[len(list)-1]
		list[len(list)-1] = nil
		c.idle[e.key] = list[:len(list)-1]
		c.idleCount--
		if wc.reusable(now) {
			c.mu.Unlock()
			wc.reused = true
			return wc, nil
		}
		wc.conn.Close()
	}
	c.mu.Unlock()

	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := c.guard.DialContext(dctx, "tcp", e.addr)
	if err != nil {
		return nil, err
	}
	if e.tls {
		cfg := c.tlsBase.Clone()
		cfg.ServerName = e.serverName
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	meter := &meteredReader{r: conn}
	return &wireConn{conn: conn, meter: meter, br: bufio.NewReaderSize(meter, 4096)}, nil
}

// peekAfter is how long a connection must have been idle before reusable looks at its socket.
// A busy lane takes its connection back within microseconds (95 % of the reuses in scenario 4
// of cmd/eventgate-bench came sooner), and a look is one more system call per request; what a
// look finds comes later: a receiver's idle timeout, a response sent long after its request.
const peekAfter = time.Millisecond

// reusable says whether an idle connection may carry a request: it has not been idle too long,
// and nothing came on it, read already or, after peekAfter, waiting in the socket.
func (wc *wireConn) reusable(now time.Time) bool {
	idle := now.Sub(wc.idleSince)
	switch {
	case idle >= idleTimeout || wc.br.Buffered() > 0:
		return false
	case idle < peekAfter:
		return true
	default:
		return wc.quiet()
	}
}

// quiet says that nothing is waiting in an idle connection's socket: no byte (a late or
// unasked-for response, which would be read as the next request's answer; a 408 some servers
// send before closing), no end of stream and no reset. It peeks without blocking, as net/http's
// reader goroutine would have been reading all along.
func (wc *wireConn) quiet() bool {
	nc := wc.conn
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn() // any TLS record (even a close_notify) counts
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	clean := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		clean = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true // never wait
	})
	return err == nil && clean
}

// put gives back a connection that may carry another request.
func (c *wireClient) put(key string, wc *wireConn) {
	wc.idleSince = time.Now()
	c.mu.Lock()
	if !c.closed && len(c.idle[key]) < c.perHost && c.idleCount < c.maxIdle {
		c.idle[key] = append(c.idle[key], wc)
		c.idleCount++
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	wc.conn.Close()
}

// closeIdle closes the idle connections: all of them with all set (and no more are kept
// afterwards), else those idle longer than idleTimeout.
func (c *wireClient) closeIdle(all bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = c.closed || all
	for key, list := range c.idle {
		kept := list[:0]
		for _, wc := range list {
			if all || now.Sub(wc.idleSince) >= idleTimeout {
				wc.conn.Close()
				c.idleCount--
				continue
			}
			kept = append(kept, wc)
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(c.idle, key)
		} else {
			c.idle[key] = kept
		}
	}
}

// exchange is a request made: the response (its body read by the caller through body) and the
// connection it came on, which finish gives back or closes.
type exchange struct {
	resp *http.Response
	wc   *wireConn
	key  string
	stop func() bool // unregisters the abort
}

// post sends body to e with the given headers (Host and Content-Length are added) and reads the
// response head. The whole exchange, the caller's reading of the body included, must end by
// deadline; cancelling abort (the dispatcher's Stop) ends it at once. When writing to a reused
// connection fails because the receiver closed it, the request goes once more on another: the
// receiver cannot have had all of it. Nothing else is retried here (the retry schedule does),
// as net/http would not retry such a POST either: a receiver that read the request and closed
// without answering may have acted on it.
func (c *wireClient) post(abort context.Context, e *endpoint, headers []headerPair, body []byte, deadline time.Time) (*exchange, error) {
	for retried := false; ; retried = true {
		wc, err := c.get(abort, e, deadline)
		if err != nil {
			return nil, err
		}
		// Stop ends the exchange, the caller's reading of the body included, at once: its
		// deadline in the past is set after this one.
		if err := wc.conn.SetDeadline(deadline); err != nil {
			wc.conn.Close()
			return nil, err
		}
		stop := context.AfterFunc(abort, func() { wc.conn.SetDeadline(time.Unix(1, 0)) })
		resp, err := c.roundTrip(wc, e, headers, body)
		if err == nil {
			return &exchange{resp: resp, wc: wc, key: e.key, stop: stop}, nil
		}
		stop()
		wc.conn.Close()
		var closed closedEarly
		if retried || !wc.reused || !errors.As(err, &closed) || abort.Err() != nil {
			return nil, err
		}
	}
}

// closedEarly is the error of a write to a connection the receiver had closed: the receiver
// cannot have the whole request. On a reused connection it was closed while idle, just after
// idleClean looked.
type closedEarly struct{ error }

func (e closedEarly) Unwrap() error { return e.error }

// asClosedEarly marks err as closedEarly when it says the peer closed or reset the connection.
func asClosedEarly(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return closedEarly{err}
	}
	return err
}

func (c *wireClient) roundTrip(wc *wireConn, e *endpoint, headers []headerPair, body []byte) (*http.Response, error) {
	h := append(wc.head[:0], "POST "...)
	h = append(h, e.requestURI...)
	h = append(h, " HTTP/1.1\r\nHost: "...)
	h = append(h, e.host...)
	for _, p := range headers {
		h = append(h, "\r\n"...)
		h = append(h, p.name...)
		h = append(h, ": "...)
		h = append(h, p.value...)
	}
	h = append(h, "\r\nContent-Length: "...)
	h = strconv.AppendInt(h, int64(len(body)), 10)
	h = append(h, "\r\n\r\n"...)
	wc.head = h
	wc.meter.left = maxResponseHead
	bufs := net.Buffers{h, body}
	if _, err := bufs.WriteTo(wc.conn); err != nil {
		return nil, asClosedEarly(err)
	}
	for {
		resp, err := http.ReadResponse(wc.br, nil)
		if err != nil {
			return nil, err
		}
		// 1xx answers other than 101 are interim: the final response follows.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		wc.meter.left += maxResponseBody + maxDrain + 64<<10 // the body, and chunks' framing
		return resp, nil
	}
}

// finish ends an exchange: the connection is reused when the response body was read to its end
// (drained reports that), the receiver did not ask to close it and sent nothing after it, and
// the exchange was not aborted.
func (c *wireClient) finish(x *exchange, drained bool) {
	notAborted := x.stop()
	if drained && notAborted && !x.resp.Close && x.resp.StatusCode != http.StatusSwitchingProtocols && x.wc.br.Buffered() == 0 {
		x.wc.reused = false
		c.put(x.key, x.wc)
		return
	}
	x.wc.conn.Close()
}
