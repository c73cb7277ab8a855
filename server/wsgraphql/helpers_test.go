package wsgraphql_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/server/substream/substreamtest"
	"github.com/eventgate/eventgate/server/wsgraphql"
)

// wait bounds every wait of these tests; reaching it means the test failed.
const wait = 10 * time.Second

// tokens maps the bearer tokens testAuthenticate knows to their principal.
var tokens = map[string]string{"alice-token": "alice", "bob-token": "bob"}

// testAuthenticate does what the real hook does with its inputs: a token from the init
// payload (Authorization, authorization or token) or else the upgrade's Authorization header.
func testAuthenticate(ctx context.Context, upgrade http.Header, payload map[string]any) (context.Context, error) {
	var tok string
	for _, key := range []string{"Authorization", "authorization", "token"} {
		if v, ok := payload[key].(string); ok {
			tok = v
			break
		}
	}
	if tok == "" {
		tok = upgrade.Get("Authorization")
	}
	name, ok := tokens[strings.TrimPrefix(tok, "Bearer ")]
	if !ok {
		return nil, errors.New("unknown token")
	}
	return substreamtest.WithPrincipal(ctx, name), nil
}

type fixture struct {
	src *substreamtest.Source
	tr  *wsgraphql.Transport
	url string
}

// newFixture serves a Transport over a real HTTP server. With smallBuffers the server's
// socket send buffers are tiny, so that a client that does not read stalls the writer quickly.
func newFixture(t testing.TB, cfg wsgraphql.Config, smallBuffers bool) *fixture {
	t.Helper()
	if cfg.Authenticate == nil {
		cfg.Authenticate = testAuthenticate
	}
	src, exec := substreamtest.NewExecutor()
	tr := wsgraphql.New(cfg)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tr.Supports(r) {
			http.Error(w, "not a websocket", http.StatusBadRequest)
			return
		}
		tr.Do(w, r, exec)
	}))
	if smallBuffers {
		srv.Listener = smallSendBufferListener{srv.Listener}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := tr.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &fixture{src: src, tr: tr, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
}

type smallSendBufferListener struct{ net.Listener }

func (l smallSendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// message is a message of either protocol as a client sees it.
type message struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

type client struct {
	t  *testing.T
	ws *websocket.Conn
}

type dialOptions struct {
	protocols    []string
	header       http.Header
	smallRecvBuf bool
}

// dial opens a client connection with the given sub-protocols.
func (f *fixture) dial(t *testing.T, opts dialOptions) *client {
	t.Helper()
	d := websocket.Dialer{Subprotocols: opts.protocols, HandshakeTimeout: wait}
	if opts.smallRecvBuf {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
			return errors.Join(err, serr)
		}}
		d.NetDialContext = nd.DialContext
	}
	ws, resp, err := d.Dial(f.url, opts.header)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { ws.Close() })
	return &client{t: t, ws: ws}
}

// dialInit opens a connection with protocol and completes connection_init as alice.
func (f *fixture) dialInit(t *testing.T, protocol string) *client {
	t.Helper()
	c := f.dial(t, dialOptions{protocols: []string{protocol}})
	c.send(message{Type: "connection_init", Payload: raw(`{"Authorization":"Bearer alice-token"}`)})
	// With short ping intervals a ping may come first.
	for m := c.read(); m.Type != "connection_ack"; m = c.read() {
		if m.Type != "ping" {
			t.Fatalf("got %s, want connection_ack", m.Type)
		}
	}
	if protocol == wsgraphql.ProtocolLegacyWS {
		c.expect("ka")
	}
	return c
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func (c *client) send(m message) {
	c.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(b))
}

func (c *client) sendRaw(s string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// subscribe sends a graphql-transport-ws subscribe (legacy: start).
func (c *client) subscribe(typ, id, query string) {
	c.t.Helper()
	payload, _ := json.Marshal(map[string]any{"query": query})
	c.send(message{ID: id, Type: typ, Payload: payload})
}

// next reads the next message.
func (c *client) next() (message, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(wait))
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		return message{}, err
	}
	var m message
	if err := json.Unmarshal(data, &m); err != nil {
		return message{}, err
	}
	return m, nil
}

// read reads the next message and fails the test if the socket ended.
func (c *client) read() message {
	c.t.Helper()
	m, err := c.next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// expect reads the next message and checks its type.
func (c *client) expect(typ string) message {
	c.t.Helper()
	m := c.read()
	if m.Type != typ {
		c.t.Fatalf("got message %s %s %s, want type %s", m.Type, m.ID, m.Payload, typ)
	}
	return m
}

// closeCode reads until the socket ends and returns the close code (1006 without a close frame).
func (c *client) closeCode() int {
	c.t.Helper()
	for {
		_, err := c.next()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		c.t.Fatalf("read: got %v, want a close", err)
	}
}

func (c *client) expectClose(code int) {
	c.t.Helper()
	if got := c.closeCode(); got != code {
		c.t.Fatalf("close code: got %d, want %d", got, code)
	}
}

// eventCursor returns the cursor in a next/data message of `events { cursor }`.
func eventCursor(t *testing.T, m message) string {
	t.Helper()
	var p struct {
		Data struct {
			Events struct {
				Cursor string `json:"cursor"`
			} `json:"events"`
		} `json:"data"`
		Errors json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || p.Data.Events.Cursor == "" {
		t.Fatalf("payload %s: want events with a cursor (%v)", m.Payload, err)
	}
	return p.Data.Events.Cursor
}

// errorCodes returns the extensions.code of an error message's errors.
func errorCodes(t *testing.T, m message) []string {
	t.Helper()
	var errs []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	}
	if err := json.Unmarshal(m.Payload, &errs); err != nil {
		t.Fatalf("error payload %s: %v", m.Payload, err)
	}
	var codes []string
	for _, e := range errs {
		code, _ := e.Extensions["code"].(string)
		codes = append(codes, code)
	}
	return codes
}

// waitFor polls cond until it holds or the wait bound passes.
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

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}
