package ssegraphql_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eventgate/eventgate/graph/scalar"
	"github.com/eventgate/eventgate/server/ssegraphql"
	"github.com/eventgate/eventgate/server/substream/substreamtest"
)

// wait bounds every wait of these tests; reaching it means the test failed.
const wait = 10 * time.Second

type fixture struct {
	src *substreamtest.Source
	tr  *ssegraphql.Transport
	url string
}

// newFixture serves a Transport over a real HTTP server, behind a stand-in for the auth
// middleware that puts the principal "alice" in the request context. With smallBuffers the
// server's socket send buffers are tiny, so a client that does not read stalls writes quickly.
func newFixture(t *testing.T, cfg ssegraphql.Config, smallBuffers bool) *fixture {
	t.Helper()
	src, exec := substreamtest.NewExecutor()
	tr := ssegraphql.New(cfg)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tr.Supports(r) {
			http.Error(w, "not an event stream request", http.StatusNotAcceptable)
			return
		}
		r = r.WithContext(substreamtest.WithPrincipal(r.Context(), "alice"))
		tr.Do(w, r, exec)
	}))
	if smallBuffers {
		srv.Listener = smallSendBufferListener{srv.Listener}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return &fixture{src: src, tr: tr, url: srv.URL}
}

type smallSendBufferListener struct{ net.Listener }

func (l smallSendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// httpClient returns a client; with smallRecvBuf its sockets have tiny receive buffers.
func httpClient(t *testing.T, smallRecvBuf bool) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	if smallRecvBuf {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
			return errors.Join(err, serr)
		}}
		tr.DialContext = nd.DialContext
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

type request struct {
	method    string
	query     string
	variables string // JSON, optional
	body      string // raw POST body instead of one built from query/variables
}

// do sends an event-stream request; the response body is closed at cleanup.
func (f *fixture) do(t *testing.T, ctx context.Context, hc *http.Client, req request) *http.Response {
	t.Helper()
	var body io.Reader
	u := f.url + "/query"
	switch {
	case req.method == http.MethodGet:
		v := url.Values{"query": {req.query}}
		if req.variables != "" {
			v.Set("variables", req.variables)
		}
		u += "?" + v.Encode()
	case req.body != "":
		body = strings.NewReader(req.body)
	default:
		m := map[string]any{"query": req.query}
		if req.variables != "" {
			m["variables"] = json.RawMessage(req.variables)
		}
		b, _ := json.Marshal(m)
		body = strings.NewReader(string(b))
	}
	r, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Accept", "text/event-stream")
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(r)
	if err != nil {
		t.Fatalf("%s: %v", req.method, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

type event struct{ name, data string }

// stream reads server-sent events from a response.
type stream struct {
	t          *testing.T
	br         *bufio.Reader
	keepAlives int
}

func newStream(t *testing.T, resp *http.Response) *stream {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status: got %d (%s), want 200", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type: got %q, want text/event-stream", ct)
	}
	return &stream{t: t, br: bufio.NewReader(resp.Body)}
}

// next reads the next event; comment lines (keep-alives) are counted and skipped.
func (s *stream) next() (event, error) {
	var ev event
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			return ev, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.name != "" {
				return ev, nil
			}
		case strings.HasPrefix(line, ":"):
			s.keepAlives++
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case line == "data:":
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		default:
			return ev, fmt.Errorf("unexpected line %q", line)
		}
	}
}

func (s *stream) expect(name string) event {
	s.t.Helper()
	ev, err := s.next()
	if err != nil {
		s.t.Fatalf("read event: %v", err)
	}
	if ev.name != name {
		s.t.Fatalf("got event %s %s, want %s", ev.name, ev.data, name)
	}
	return ev
}

// expectEnd checks that the stream ends after what was read.
func (s *stream) expectEnd() {
	s.t.Helper()
	if ev, err := s.next(); err != io.EOF {
		s.t.Fatalf("after complete: got %v %v, want the end of the stream", ev, err)
	}
}

func cursorOf(t *testing.T, ev event) string {
	t.Helper()
	var p struct {
		Data struct{ Events struct{ Cursor string } }
	}
	if err := json.Unmarshal([]byte(ev.data), &p); err != nil || p.Data.Events.Cursor == "" {
		t.Fatalf("event data %s: want events with a cursor (%v)", ev.data, err)
	}
	return p.Data.Events.Cursor
}

type gqlErrors struct {
	Errors []struct {
		Message    string
		Extensions struct{ Code, Cursor string }
	}
}

func errorCode(t *testing.T, data string) gqlErrors {
	t.Helper()
	var e gqlErrors
	if err := json.Unmarshal([]byte(data), &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("body %s: want GraphQL errors (%v)", data, err)
	}
	return e
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestSupports(t *testing.T) {
	tr := ssegraphql.New(ssegraphql.Config{})
	for _, tc := range []struct {
		accept string
		want   bool
	}{
		{"text/event-stream", true},
		{"text/event-stream, application/json", true},
		{"application/json, text/event-stream", false},
		{"application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed", false},
		{"text/event-stream;q=0, application/json", false},
		{"application/json", false},
		{"", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/query", nil)
		r.Header.Set("Accept", tc.accept)
		if got := tr.Supports(r); got != tc.want {
			t.Errorf("Accept %q: got %v, want %v", tc.accept, got, tc.want)
		}
	}
}

func TestSubscriptionStreams(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			f := newFixture(t, ssegraphql.Config{}, false)
			ctx := testContext(t)
			reqCtx, cancelReq := context.WithCancel(ctx)
			defer cancelReq()
			resp := f.do(t, reqCtx, httpClient(t, false), request{method: method,
				query: `subscription($t: [String!]) { events(types: $t) { cursor } }`, variables: `{"t":["test.event"]}`})
			s := newStream(t, resp)
			if err := f.src.WaitSubscribers(ctx, 1); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				ev := f.src.Event(0)
				if err := f.src.Publish(ctx, ev); err != nil {
					t.Fatal(err)
				}
				if got, want := cursorOf(t, s.expect("next")), string(scalar.CursorFor(int64(ev.ID))); got != want {
					t.Errorf("cursor: got %s, want %s", got, want)
				}
			}
			// The client going away ends the subscription and its resolver.
			cancelReq()
			if err := f.src.WaitSubscribers(ctx, 0); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestQueriesAndMutations(t *testing.T) {
	tests := []struct {
		name, method, query, want string
	}{
		{"query over GET", http.MethodGet, `{ viewer { name } }`, `{"data":{"viewer":{"name":"alice"}}}`},
		{"query over POST", http.MethodPost, `{ viewer { name } }`, `{"data":{"viewer":{"name":"alice"}}}`},
		{"mutation over POST", http.MethodPost, `mutation { publishEvent(input: {type: "a.b", payload: {}}) { type } }`,
			`{"data":{"publishEvent":{"type":"a.b"}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, ssegraphql.Config{}, false)
			s := newStream(t, f.do(t, testContext(t), httpClient(t, false), request{method: tc.method, query: tc.query}))
			if ev := s.expect("next"); ev.data != tc.want {
				t.Errorf("next: got %s, want %s", ev.data, tc.want)
			}
			if ev := s.expect("complete"); ev.data != "" {
				t.Errorf("complete data: got %q, want empty", ev.data)
			}
			s.expectEnd()
		})
	}
}

func TestRequestsRefusedBeforeStreaming(t *testing.T) {
	tests := []struct {
		name       string
		req        request
		wantStatus int
		wantCode   string
	}{
		{"parse error", request{method: http.MethodPost, query: `subscription { events {`}, http.StatusBadRequest, "GRAPHQL_PARSE_FAILED"},
		{"validation error", request{method: http.MethodGet, query: `subscription { events { nope } }`}, http.StatusBadRequest, "GRAPHQL_VALIDATION_FAILED"},
		{"missing variable", request{method: http.MethodPost, query: `subscription($t: [String!]!) { events(types: $t) { id } }`, variables: `{}`},
			http.StatusBadRequest, "GRAPHQL_VALIDATION_FAILED"},
		{"body not JSON", request{method: http.MethodPost, body: `{"query":`}, http.StatusBadRequest, ""},
		{"variables not JSON", request{method: http.MethodGet, query: `{ viewer { name } }`, variables: `{`}, http.StatusBadRequest, ""},
		{"mutation over GET", request{method: http.MethodGet, query: `mutation { publishEvent(input: {type: "a.b", payload: {}}) { type } }`},
			http.StatusMethodNotAllowed, ""},
		{"other method", request{method: http.MethodPut, body: `{"query":"{ viewer { name } }"}`}, http.StatusMethodNotAllowed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, ssegraphql.Config{}, false)
			resp := f.do(t, testContext(t), httpClient(t, false), tc.req)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status: got %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("content type: got %q, want application/json", ct)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			e := errorCode(t, string(b))
			if tc.wantCode != "" && e.Errors[0].Extensions.Code != tc.wantCode {
				t.Errorf("code: got %s, want %s", e.Errors[0].Extensions.Code, tc.wantCode)
			}
			if tc.wantStatus == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}
}

func TestRefusedSubscriptionIsNextWithErrorsThenComplete(t *testing.T) {
	f := newFixture(t, ssegraphql.Config{}, false)
	s := newStream(t, f.do(t, testContext(t), httpClient(t, false), request{method: http.MethodGet,
		query: fmt.Sprintf(`subscription { events(types: [%q]) { id } }`, substreamtest.TypeForbidden)}))
	if e := errorCode(t, s.expect("next").data); e.Errors[0].Extensions.Code != "FORBIDDEN" {
		t.Errorf("code: got %s, want FORBIDDEN", e.Errors[0].Extensions.Code)
	}
	s.expect("complete")
	s.expectEnd()
}

func TestKeepAliveComments(t *testing.T) {
	f := newFixture(t, ssegraphql.Config{KeepAliveInterval: 10 * time.Millisecond}, false)
	ctx := testContext(t)
	s := newStream(t, f.do(t, ctx, httpClient(t, false), request{method: http.MethodGet, query: `subscription { events { cursor } }`}))
	if err := f.src.WaitSubscribers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Read raw lines until three keep-alive comments went by, then an event still arrives.
	for s.keepAlives < 3 {
		line, err := s.br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == ":\n" {
			s.keepAlives++
		}
	}
	ev := f.src.Event(0)
	if err := f.src.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if got := cursorOf(t, s.expect("next")); got != string(scalar.CursorFor(int64(ev.ID))) {
		t.Errorf("cursor: got %s, want event %d's", got, ev.ID)
	}
}

func TestRecheckFailureEndsStreamUnauthenticated(t *testing.T) {
	var revoked atomic.Bool
	var checkedAs atomic.Value
	f := newFixture(t, ssegraphql.Config{
		RecheckInterval: 10 * time.Millisecond,
		Recheck: func(ctx context.Context) error {
			// The hook gets the request's context, with what the middleware put there.
			checkedAs.Store(substreamtest.Principal(ctx))
			if revoked.Load() {
				return errors.New("token revoked")
			}
			return nil
		},
	}, false)
	ctx := testContext(t)
	s := newStream(t, f.do(t, ctx, httpClient(t, false), request{method: http.MethodGet, query: `subscription { events { cursor } }`}))
	if err := f.src.WaitSubscribers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a recheck", func() bool { return checkedAs.Load() != nil })
	if got := checkedAs.Load(); got != "alice" {
		t.Errorf("recheck context principal: got %v, want alice", got)
	}
	revoked.Store(true)
	if e := errorCode(t, s.expect("next").data); e.Errors[0].Extensions.Code != "UNAUTHENTICATED" {
		t.Errorf("code: got %s, want UNAUTHENTICATED", e.Errors[0].Extensions.Code)
	}
	s.expect("complete")
	s.expectEnd()
	if err := f.src.WaitSubscribers(ctx, 0); err != nil {
		t.Fatal(err)
	}
}

func TestSlowConsumerGetsErrorWithResumeCursor(t *testing.T) {
	const queueSize = 8
	f := newFixture(t, ssegraphql.Config{QueueSize: queueSize}, true)
	ctx := testContext(t)

	slowResp := f.do(t, ctx, httpClient(t, true), request{method: http.MethodGet, query: `subscription { events { cursor payload } }`})
	slow := newStream(t, slowResp)
	fast := newStream(t, f.do(t, ctx, httpClient(t, false), request{method: http.MethodPost, query: `subscription { events { cursor } }`}))
	if err := f.src.WaitSubscribers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	fastGot := make(chan string, 1)
	go func() {
		defer close(fastGot)
		for {
			ev, err := fast.next()
			if err != nil || ev.name != "next" {
				return
			}
			var p struct {
				Data struct{ Events struct{ Cursor string } }
			}
			_ = json.Unmarshal([]byte(ev.data), &p)
			fastGot <- p.Data.Events.Cursor
		}
	}()

	// Publish in lockstep with the fast stream until the slow one is dropped: the publisher
	// and the fast stream keep going while the slow stream's client reads nothing.
	publish := func() {
		t.Helper()
		ev := f.src.Event(8 << 10)
		if err := f.src.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-fastGot:
			if want := string(scalar.CursorFor(int64(ev.ID))); got != want {
				t.Fatalf("fast stream: got cursor %s, want %s", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("fast stream did not receive event %d", ev.ID)
		}
	}
	for n := 0; f.tr.Stats().SlowConsumers == 0; n++ {
		if n == 10000 {
			t.Fatal("the slow stream was never dropped")
		}
		publish()
	}
	for range 3 {
		publish()
	}

	var last string
	for i := 1; ; i++ {
		ev := slow.expect("next")
		if strings.HasPrefix(ev.data, `{"errors"`) {
			e := errorCode(t, ev.data)
			if e.Errors[0].Extensions.Code != "SLOW_CONSUMER" {
				t.Errorf("code: got %s, want SLOW_CONSUMER", e.Errors[0].Extensions.Code)
			}
			if last == "" {
				t.Fatal("the slow stream got no event before being dropped; the test proves nothing")
			}
			if e.Errors[0].Extensions.Cursor != last {
				t.Errorf("resume cursor: got %q, want the last sent %q", e.Errors[0].Extensions.Cursor, last)
			}
			break
		}
		last = cursorOf(t, ev)
		if want := string(scalar.CursorFor(int64(i))); last != want {
			t.Fatalf("event %d: got cursor %s, want %s", i, last, want)
		}
	}
	slow.expect("complete")
	slow.expectEnd()
	if st := f.tr.Stats(); st.SlowConsumers != 1 || st.PeakQueued != queueSize {
		t.Errorf("stats: got %+v, want 1 slow consumer and a peak of exactly %d", st, queueSize)
	}
}
