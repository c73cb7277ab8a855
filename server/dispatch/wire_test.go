package dispatch

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/server/netguard"
)

// loopbackClient is a wireClient allowed to dial loopback receivers.
func loopbackClient(t *testing.T) *wireClient {
	t.Helper()
	c := newWireClient(netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, nil), 4, 16)
	t.Cleanup(func() { c.closeIdle(true) })
	return c
}

// wirePost sends one request through c and reads the whole answer, as send does.
func wirePost(t *testing.T, c *wireClient, rawURL string, deadline time.Duration) (status int, body string, err error) {
	t.Helper()
	e, err := parseEndpoint(rawURL)
	if err != nil {
		t.Fatalf("parse %s: %v", rawURL, err)
	}
	x, err := c.post(context.Background(), e, []headerPair{{"Content-Type", "application/json"}}, []byte(`{"n":1}`), time.Now().Add(deadline))
	if err != nil {
		return 0, "", err
	}
	text := readBody(x.resp.Body)
	_, drainErr := io.CopyN(io.Discard, x.resp.Body, maxDrain)
	c.finish(x, drainErr == io.EOF)
	return x.resp.StatusCode, text, nil
}

// countingServer is an httptest server that counts requests and new connections.
type countingServer struct {
	*httptest.Server
	requests, conns atomic.Int64
}

func newCountingServer(t *testing.T, h http.HandlerFunc, configure ...func(*http.Server)) *countingServer {
	s := &countingServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		h(w, r)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	for _, f := range configure {
		f(s.Config)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func TestWireReusesConnections(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if body, _ := io.ReadAll(r.Body); string(body) != `{"n":1}` || r.ContentLength != 7 || r.Host == "" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad framing", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "ok "+r.URL.RequestURI())
	})
	c := loopbackClient(t)
	for range 20 {
		code, body, err := wirePost(t, c, srv.URL+"/hook?a=1", 5*time.Second)
		if err != nil || code != 200 || body != "ok /hook?a=1" {
			t.Fatalf("got %d %q %v, want 200 %q", code, body, err, "ok /hook?a=1")
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("20 requests in sequence opened %d connections, want 1", n)
	}
}

func TestWireReplacesConnectionClosedWhileIdle(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) },
		func(s *http.Server) { s.IdleTimeout = 20 * time.Millisecond })
	c := loopbackClient(t)
	for i := range 3 {
		if code, _, err := wirePost(t, c, srv.URL, 5*time.Second); err != nil || code != 204 {
			t.Fatalf("request %d: got %d %v, want 204", i+1, code, err)
		}
		time.Sleep(100 * time.Millisecond) // the receiver closes the idle connection
	}
	if n := srv.requests.Load(); n != 3 {
		t.Errorf("the receiver got %d requests, want 3 (none repeated, none lost)", n)
	}
	if n := srv.conns.Load(); n != 3 {
		t.Errorf("got %d connections, want 3 (each closed while idle)", n)
	}
}

// scriptedServer answers each request on a raw TCP connection with the next of answers, as
// written (nil: read the request and never answer). It counts connections and requests.
type scriptedServer struct {
	ln              net.Listener
	mu              sync.Mutex
	answers         []func(w io.Writer) bool // false: close the connection afterwards
	requests, conns int
}

func newScriptedServer(t *testing.T, answers ...func(w io.Writer) bool) *scriptedServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptedServer{ln: ln, answers: answers}
	var open sync.WaitGroup
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		s.mu.Unlock()
		open.Wait()
	})
	open.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			conns = append(conns, conn)
			s.mu.Unlock()
			open.Go(func() { s.serve(conn) })
		}
	})
	return s
}

func (s *scriptedServer) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		s.mu.Lock()
		s.requests++
		var answer func(io.Writer) bool
		if len(s.answers) > 0 {
			answer, s.answers = s.answers[0], s.answers[1:]
		}
		s.mu.Unlock()
		if answer == nil {
			_, _ = io.Copy(io.Discard, br) // hang until the client gives up
			return
		}
		if !answer(conn) {
			return
		}
	}
}

func (s *scriptedServer) url() string { return "http://" + s.ln.Addr().String() + "/hook" }

func (s *scriptedServer) counts() (requests, conns int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.conns
}

// answer writes raw and keeps the connection open unless closeAfter.
func answer(raw string, closeAfter bool) func(io.Writer) bool {
	return func(w io.Writer) bool {
		_, _ = io.WriteString(w, raw)
		return !closeAfter
	}
}

func TestWireResponseFraming(t *testing.T) {
	big := strings.Repeat("x", maxResponseBody+maxDrain+1)
	tests := []struct {
		name      string
		answer    func(io.Writer) bool
		wantCode  int
		wantBody  string
		wantConns int // after this answer and a 204 after it
	}{
		{"content length", answer("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false), 200, "hello", 1},
		{"chunked", answer("HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", false), 202, "hello", 1},
		{"interim 100 before the answer", answer("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", false), 201, "ok", 1},
		{"connection close", answer("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true), 200, "ok", 2},
		{"bytes after the answer", answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK", false), 200, "ok", 2},
		{"body up to the close", answer("HTTP/1.1 500 Internal Server Error\r\n\r\nbroken", true), 500, "broken", 2},
		{"endless head", answer("HTTP/1.1 200 OK\r\nX: "+strings.Repeat("y", maxResponseHead)+"\r\n\r\n", false), 0, "", 2},
		{"body too long to drain", answer("HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(big))+"\r\n\r\n"+big, false), 200, big[:maxResponseBody], 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScriptedServer(t, tc.answer, answer("HTTP/1.1 204 No Content\r\n\r\n", false))
			c := loopbackClient(t)
			code, body, err := wirePost(t, c, srv.url(), 5*time.Second)
			if tc.wantCode == 0 {
				if !errors.Is(err, errResponseTooLarge) {
					t.Fatalf("got %d %v, want %v", code, err, errResponseTooLarge)
				}
			} else if err != nil || code != tc.wantCode || body != tc.wantBody {
				t.Fatalf("got %d %.40q %v, want %d %.40q", code, body, err, tc.wantCode, tc.wantBody)
			}
			if code, _, err := wirePost(t, c, srv.url(), 5*time.Second); err != nil || code != 204 {
				t.Fatalf("next request: got %d %v, want 204", code, err)
			}
			if reqs, conns := srv.counts(); reqs != 2 || conns != tc.wantConns {
				t.Errorf("got %d requests on %d connections, want 2 on %d", reqs, conns, tc.wantConns)
			}
		})
	}
}

// Whatever a receiver sends on an idle connection is not taken for the next request's answer:
// a late second response, or the 408 some servers send before closing an idle connection.
func TestWireIdleConnectionThatSpokeIsNotReused(t *testing.T) {
	for _, late := range []string{
		"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nstale",
		"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
	} {
		sent := make(chan struct{})
		srv := newScriptedServer(t,
			func(w io.Writer) bool {
				_, _ = io.WriteString(w, "HTTP/1.1 204 No Content\r\n\r\n")
				time.Sleep(20 * time.Millisecond)
				_, _ = io.WriteString(w, late)
				close(sent)
				return true
			},
			answer("HTTP/1.1 204 No Content\r\n\r\n", false))
		c := loopbackClient(t)
		if code, _, err := wirePost(t, c, srv.url(), 5*time.Second); err != nil || code != 204 {
			t.Fatalf("first request: got %d %v", code, err)
		}
		<-sent
		time.Sleep(20 * time.Millisecond) // the late bytes arrive
		if code, body, err := wirePost(t, c, srv.url(), 5*time.Second); err != nil || code != 204 {
			t.Errorf("after %.20q: got %d %q %v, want the receiver's 204 on a new connection", late, code, body, err)
		}
	}
}

// A receiver that reads a request and closes without answering may have acted on it: the
// request is not sent again (the retry schedule decides), however many idle connections there are.
func TestWireRequestReadThenHungUpIsNotResent(t *testing.T) {
	ok := answer("HTTP/1.1 204 No Content\r\n\r\n", false)
	hangUp := answer("", true)
	srv := newScriptedServer(t, ok, ok, ok, hangUp, hangUp, hangUp, hangUp)
	c := loopbackClient(t)
	var wg sync.WaitGroup
	for range 3 { // three idle connections
		wg.Go(func() {
			if code, _, err := wirePost(t, c, srv.url(), 5*time.Second); err != nil || code != 204 {
				t.Errorf("warm-up: got %d %v", code, err)
			}
		})
	}
	wg.Wait()
	if _, _, err := wirePost(t, c, srv.url(), 5*time.Second); err == nil {
		t.Error("got an answer from a receiver that hung up")
	}
	if reqs, _ := srv.counts(); reqs != 4 {
		t.Errorf("the receiver read %d requests, want 4 (3 + the one, once)", reqs)
	}
}

// A timeout on a reused connection is the attempt's outcome: the request is not sent again.
func TestWireTimeoutIsNotRetried(t *testing.T) {
	srv := newScriptedServer(t, answer("HTTP/1.1 204 No Content\r\n\r\n", false), nil)
	c := loopbackClient(t)
	if code, _, err := wirePost(t, c, srv.url(), 5*time.Second); err != nil || code != 204 {
		t.Fatalf("first request: got %d %v", code, err)
	}
	_, _, err := wirePost(t, c, srv.url(), 200*time.Millisecond)
	if !isTimeout(err) {
		t.Fatalf("got %v, want a timeout", err)
	}
	if reqs, _ := srv.counts(); reqs != 2 {
		t.Errorf("the receiver got %d requests, want 2", reqs)
	}
}

// Cancelling the abort context (Stop) ends a request in flight at once.
func TestWireAbort(t *testing.T) {
	srv := newScriptedServer(t, nil)
	c := loopbackClient(t)
	e, err := parseEndpoint(srv.url())
	if err != nil {
		t.Fatal(err)
	}
	abort, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = c.post(abort, e, nil, []byte("{}"), time.Now().Add(time.Minute))
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("got %v after %v, want an error soon after the abort", err, time.Since(start))
	}
	var closed closedEarly
	if errors.As(err, &closed) {
		t.Errorf("an aborted request looks like a connection closed by the receiver: %v", err)
	}
}

// The abort also ends the reading of a body that stalls.
func TestWireAbortWhileReadingBody(t *testing.T) {
	stalled := make(chan struct{})
	srv := newScriptedServer(t, func(w io.Writer) bool {
		_, _ = io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok")
		<-stalled
		return false
	})
	t.Cleanup(func() { close(stalled) }) // before the server's cleanup, which waits for it
	c := loopbackClient(t)
	e, err := parseEndpoint(srv.url())
	if err != nil {
		t.Fatal(err)
	}
	abort, cancel := context.WithCancel(context.Background())
	x, err := c.post(abort, e, nil, []byte("{}"), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	text := readBody(x.resp.Body)
	if time.Since(start) > 10*time.Second || text != "ok" {
		t.Errorf("read %q in %v, want the 2 bytes sent, soon after the abort", text, time.Since(start))
	}
	c.finish(x, false)
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		raw                         string
		key, addr, host, requestURI string
		tls                         bool
	}{
		{"http://example.com/hook", "http://example.com:80", "example.com:80", "example.com", "/hook", false},
		{"https://example.com", "https://example.com:443", "example.com:443", "example.com", "/", true},
		{"http://127.0.0.1:8080/a/b?x=1&y=%20", "http://127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1:8080", "/a/b?x=1&y=%20", false},
		{"https://[::1]:8443/h", "https://[::1]:8443", "[::1]:8443", "[::1]:8443", "/h", true},
	}
	for _, tc := range tests {
		e, err := parseEndpoint(tc.raw)
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		if e.key != tc.key || e.addr != tc.addr || e.host != tc.host || e.requestURI != tc.requestURI || e.tls != tc.tls {
			t.Errorf("%s: got %+v", tc.raw, *e)
		}
	}
	for _, raw := range []string{"ftp://example.com/", "http:///nohost", "://bad"} {
		if _, err := parseEndpoint(raw); err == nil {
			t.Errorf("%s: parsed, want an error", raw)
		}
	}
}

func TestWireTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	t.Cleanup(srv.Close)

	untrusting := loopbackClient(t)
	_, _, err := wirePost(t, untrusting, srv.URL, 5*time.Second)
	if code, _ := classify(time.Now().Add(time.Minute), err, time.Minute); code != "TLS" {
		t.Errorf("a certificate no root vouches for: got %s (%v), want TLS", code, err)
	}

	trusting := loopbackClient(t)
	trusting.tlsBase.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	for range 2 {
		if code, body, err := wirePost(t, trusting, srv.URL, 5*time.Second); err != nil || code != 200 || body != "HTTP/1.1" {
			t.Fatalf("got %d %q %v, want 200 over HTTP/1.1", code, body, err)
		}
	}
}
