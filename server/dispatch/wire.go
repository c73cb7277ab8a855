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

	mu      sync.Mutex
	idle    map[string][]*wireConn // endpoint key → idle connections, most recent last
	perHost int                    // idle connections kept per endpoint
	closed  bool
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

// maxResponseBytes bounds what one response may send, head and framing included: the head is
// otherwise unbounded (net/http's limit on it was 64 KiB), and send reads at most
// maxResponseBody+maxDrain of the body.
const maxResponseBytes = 64<<10 + maxResponseBody + maxDrain + 64<<10

// errResponseTooLarge ends a response that sends more than maxResponseBytes.
var errResponseTooLarge = fmt.Errorf("response longer than %d bytes", maxResponseBytes)

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

func newWireClient(guard *netguard.Guard, perHost int) *wireClient {
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
		if now.Sub(wc.idleSince) < idleTimeout {
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

// put gives back a connection that may carry another request.
func (c *wireClient) put(key string, wc *wireConn) {
	wc.idleSince = time.Now()
	c.mu.Lock()
	if !c.closed && len(c.idle[key]) < c.perHost {
		c.idle[key] = append(c.idle[key], wc)
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
// deadline; cancelling abort (the dispatcher's Stop) ends it at once. A reused connection that
// the receiver closed while it was idle (no byte of a response came) is replaced by a new one
// once: the receiver did not see the request.
func (c *wireClient) post(abort context.Context, e *endpoint, headers []headerPair, body []byte, deadline time.Time) (*exchange, error) {
	for {
		wc, err := c.get(abort, e, deadline)
		if err != nil {
			return nil, err
		}
		// Stop ends the exchange, the caller's reading of the body included, at once.
		stop := context.AfterFunc(abort, func() { wc.conn.SetDeadline(time.Unix(1, 0)) })
		resp, err := c.roundTrip(wc, e, headers, body, deadline)
		if err == nil {
			return &exchange{resp: resp, wc: wc, key: e.key, stop: stop}, nil
		}
		stop()
		wc.conn.Close()
		var closed closedEarly
		if !wc.reused || !errors.As(err, &closed) || abort.Err() != nil {
			return nil, err
		}
	}
}

// closedEarly is the error of a connection that the receiver closed before any byte of a
// response came: on a reused connection, the sign that it was closed while idle.
type closedEarly struct{ error }

func (e closedEarly) Unwrap() error { return e.error }

// asClosedEarly marks err as closedEarly when it says the peer closed or reset the connection.
func asClosedEarly(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return closedEarly{err}
	}
	return err
}

func (c *wireClient) roundTrip(wc *wireConn, e *endpoint, headers []headerPair, body []byte, deadline time.Time) (*http.Response, error) {
	if err := wc.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}

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
	wc.meter.left = maxResponseBytes
	bufs := net.Buffers{h, body}
	if _, err := bufs.WriteTo(wc.conn); err != nil {
		return nil, asClosedEarly(err)
	}
	if _, err := wc.br.Peek(1); err != nil {
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
