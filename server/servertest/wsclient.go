package servertest

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// WSMessage is a graphql-transport-ws (or legacy graphql-ws) message.
type WSMessage struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// WSClient is a real WebSocket client speaking a GraphQL sub-protocol.
type WSClient struct {
	Conn *websocket.Conn
	t    testing.TB
}

// DialWS opens a WebSocket to /query with the given sub-protocols and upgrade headers.
func (in *Instance) DialWS(protocols []string, header http.Header) (*WSClient, *http.Response, error) {
	return in.dial("/query", protocols, header)
}

// DialWSPath opens a WebSocket to a path (with query string) of the instance.
func (in *Instance) DialWSPath(path string, protocols []string) (*WSClient, *http.Response, error) {
	return in.dial(path, protocols, nil)
}

// SlowSubscriber is Subscriber with a tiny kernel receive buffer, so a client that stops
// reading makes the server's writes block soon (for slow-consumer tests).
func (in *Instance) SlowSubscriber(token string) *WSClient {
	in.t.Helper()
	in.rcvbuf = 4096
	defer func() { in.rcvbuf = 0 }()
	return in.Subscriber(token)
}

func (in *Instance) dial(path string, protocols []string, header http.Header) (*WSClient, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: 5 * time.Second}
	if in.rcvbuf > 0 {
		size := in.rcvbuf
		d.NetDial = (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size) })
			if err != nil {
				return err
			}
			return serr
		}}).Dial
	}
	conn, resp, err := d.Dial("ws"+strings.TrimPrefix(in.URL, "http")+path, header)
	if err != nil {
		return nil, resp, err
	}
	in.t.Cleanup(func() { conn.Close() })
	return &WSClient{Conn: conn, t: in.t}, resp, nil
}

// Subscriber dials graphql-transport-ws and completes connection_init with token.
func (in *Instance) Subscriber(token string) *WSClient {
	in.t.Helper()
	c, _, err := in.DialWS([]string{"graphql-transport-ws"}, nil)
	if err != nil {
		in.t.Fatal(err)
	}
	c.Send(WSMessage{Type: "connection_init", Payload: json.RawMessage(`{"Authorization":"Bearer ` + token + `"}`)})
	if m := c.Read(); m.Type != "connection_ack" {
		in.t.Fatalf("got %s %s, want connection_ack", m.Type, m.Payload)
	}
	return c
}

// Send writes a message.
func (c *WSClient) Send(m WSMessage) {
	c.t.Helper()
	if err := c.Conn.WriteJSON(m); err != nil {
		c.t.Fatal(err)
	}
}

// Subscribe starts an operation.
func (c *WSClient) Subscribe(id, query string, vars map[string]any) {
	c.t.Helper()
	payload, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	c.Send(WSMessage{Type: "subscribe", ID: id, Payload: payload})
}

// Read returns the next message, failing the test after 10 s or on a closed socket.
func (c *WSClient) Read() WSMessage {
	c.t.Helper()
	m, err := c.TryRead(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// TryRead returns the next message or the read error (a close frame shows as *websocket.CloseError).
func (c *WSClient) TryRead(timeout time.Duration) (WSMessage, error) {
	var m WSMessage
	_ = c.Conn.SetReadDeadline(time.Now().Add(timeout))
	_, data, err := c.Conn.ReadMessage()
	if err != nil {
		return m, err
	}
	err = json.Unmarshal(data, &m)
	return m, err
}

// CloseCode reads until the socket closes and returns the close code (or -1 on timeout).
func (c *WSClient) CloseCode(timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		_, err := c.TryRead(time.Until(deadline))
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code
		}
		return -1
	}
	return -1
}
