package wsgraphql

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/99designs/gqlgen/graphql"

	"github.com/eventgate/eventgate/server/substream"
)

// sampleData is the response data of one event as the fan-out scenario selects it.
var sampleData = []byte(`{"events":{"id":"evt_0123456789","cursor":"Y3Vyc29yOjEyMzQ1","type":"user.created","occurredAt":"2026-11-27T08:00:00Z","payload":{"user_id":42,"username":"alice <&> \"quoted\"","email":"alice@example.com"}}}`)

// TestNextFrame checks that a next frame made by concatenation is the message json.Marshal
// gives, for both protocols and for ids that need escaping.
func TestNextFrame(t *testing.T) {
	payload := substream.Payload(&graphql.Response{Data: sampleData})
	for _, tc := range []struct {
		id     string
		legacy bool
	}{
		{"1", false}, {"1", true}, {`a"b\c<d>` + "\n\u2028é", false},
	} {
		t.Run(fmt.Sprintf("%q/legacy=%v", tc.id, tc.legacy), func(t *testing.T) {
			e := newEncoder(tc.id, tc.legacy)
			f := e.Next(e.Shared(payload))
			got := append(append([]byte(nil), f.Data...), f.Tail...)
			typ := typeNext
			if tc.legacy {
				typ = typeData
			}
			want, err := json.Marshal(struct {
				ID      string            `json:"id"`
				Type    string            `json:"type"`
				Payload *graphql.Response `json:"payload"`
			}{tc.id, typ, &graphql.Response{Data: sampleData}})
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

// BenchmarkNextFrame renders one event's next frame for 1,000 subscribers of the same
// operation, as a fan-out does: the payload is encoded once, each frame is the subscriber's
// prefix followed by the shared payload and "}", framed into the writer's batch buffer. The
// "marshal" case is the former way, json.Marshal per subscriber, for comparison.
//
//	go test -run '^$' -bench NextFrame ./server/wsgraphql/
func BenchmarkNextFrame(b *testing.B) {
	const subscribers = 1000
	encs := make([]*encoder, subscribers)
	for i := range encs {
		encs[i] = newEncoder(fmt.Sprint(i%3+1), false)
	}
	b.Run("shared", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			shared := encs[0].Shared(substream.Payload(&graphql.Response{Data: sampleData}))
			var batch []byte
			for _, e := range encs {
				f := e.Next(shared)
				// What the writer does with it: frame the parts into its batch buffer.
				batch = appendTextHeader(batch[:0], len(f.Data)+len(f.Tail))
				batch = append(append(batch, f.Data...), f.Tail...)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subscribers), "ns/frame")
	})
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, e := range encs {
				p, _ := json.Marshal(&graphql.Response{Data: sampleData})
				_ = encodeMessage(typeNext, &e.id, p)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subscribers), "ns/frame")
	})
}

// countConn counts the writes that reach the socket.
type countConn struct {
	net.Conn
	writes int
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes++
	return c.Conn.Write(p)
}

// TestBatchConn checks that a held batchConn passes writes on unchanged and in order, with one
// socket write per batch, and writes straight through outside a batch.
func TestBatchConn(t *testing.T) {
	server, client := net.Pipe()
	t.Cleanup(func() { server.Close(); client.Close() })
	var pool sync.Pool
	counted := &countConn{Conn: server}
	bc := newBatchConn(counted, &pool, time.Second)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	bc.hold()
	for i := range 3 {
		if _, err := bc.Write([]byte(fmt.Sprint("frame", i, ";"))); err != nil {
			t.Fatalf("write %d: got %v, want nil", i, err)
		}
	}
	if err := bc.release(); err != nil {
		t.Fatalf("release: got %v, want nil", err)
	}
	if _, err := bc.Write([]byte("direct")); err != nil {
		t.Fatalf("direct write: got %v, want nil", err)
	}
	server.Close()
	if b := <-got; string(b) != "frame0;frame1;frame2;direct" {
		t.Errorf("got %q, want %q", b, "frame0;frame1;frame2;direct")
	}
	if counted.writes != 2 {
		t.Errorf("socket writes: got %d, want 2 (one batch, one direct)", counted.writes)
	}
}

// TestWriteTextFrames checks the frames the writer makes itself against gorilla's client, at
// the sizes where the length encoding changes, in a batch and outside one, with gorilla's control
// frames in between; and that nothing follows gorilla's close frame.
func TestWriteTextFrames(t *testing.T) {
	bc, gw, ws := upgradedPair(t)
	sizes := []int{0, 1, 125, 126, 127, 0xffff, 0x10000, batchLimit + 1}
	want := make([]string, len(sizes))
	for i, n := range sizes {
		want[i] = strings.Repeat(string(rune('a'+i)), n)
	}
	pings := make(chan string, len(sizes))
	ws.SetPingHandler(func(data string) error { pings <- data; return nil })
	got := make(chan error, 1)
	go func() {
		for i, w := range want {
			typ, p, err := ws.ReadMessage()
			if err != nil {
				got <- fmt.Errorf("message %d: %w", i, err)
				return
			}
			if typ != websocket.TextMessage || string(p) != w {
				got <- fmt.Errorf("message %d: got type %d, %d bytes, want text of %d bytes", i, typ, len(p), len(w))
				return
			}
		}
		_, _, err := ws.ReadMessage()
		got <- err
	}()
	for i, w := range want {
		// Split the payload as the writer's frames come: a head and a shared tail.
		head, tail := []byte(w[:len(w)/3]), []byte(w[len(w)/3:])
		if i%2 == 0 {
			bc.hold()
		}
		if err := bc.writeText(head, tail); err != nil {
			t.Fatalf("writeText %d: %v", i, err)
		}
		if err := gw.WriteControl(websocket.PingMessage, []byte(fmt.Sprint(i)), time.Now().Add(time.Second)); err != nil {
			t.Fatalf("ping %d: %v", i, err)
		}
		if i%2 == 0 {
			if err := bc.release(); err != nil {
				t.Fatalf("release %d: %v", i, err)
			}
		}
	}
	if err := gw.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second)); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := bc.writeText([]byte("after close"), nil); !errors.Is(err, websocket.ErrCloseSent) {
		t.Errorf("writeText after the close frame: got %v, want ErrCloseSent", err)
	}
	err := <-got
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
		t.Fatalf("reader: got %v, want every message then close 1000", err)
	}
	if len(pings) != len(sizes) {
		t.Errorf("pings between the messages: got %d, want %d", len(pings), len(sizes))
	}
}

// upgradedPair upgrades a real connection as the transport does: bc is the server's batchConn,
// gw the server's gorilla Conn on it, ws the client's.
func upgradedPair(t *testing.T) (bc *batchConn, gw, ws *websocket.Conn) {
	t.Helper()
	var pool sync.Pool
	up := websocket.Upgrader{}
	server := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := hijackWriter{ResponseWriter: w, wrap: func(nc net.Conn) net.Conn {
			bc = newBatchConn(nc, &pool, time.Second)
			return bc
		}}
		c, err := up.Upgrade(hw, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
		}
		server <- c
	}))
	t.Cleanup(srv.Close)
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	t.Cleanup(func() { ws.Close() })
	gw = <-server
	if gw == nil {
		t.FailNow()
	}
	t.Cleanup(func() { gw.Close() })
	return bc, gw, ws
}

// gateConn can stop one SetWriteDeadline just before it reaches the socket, as a preemption
// between batchConn.SetWriteDeadline's Unlock and its socket call would.
type gateConn struct {
	net.Conn
	hook    atomic.Bool
	entered chan struct{}
	gate    chan struct{}
	// failNext makes the next Write write one byte and fail with a timeout (a partial write).
	failNext atomic.Bool
}

func (g *gateConn) SetWriteDeadline(t time.Time) error {
	if g.hook.CompareAndSwap(true, false) {
		g.entered <- struct{}{}
		<-g.gate
	}
	return g.Conn.SetWriteDeadline(t)
}

func (g *gateConn) Write(p []byte) (int, error) {
	if g.failNext.CompareAndSwap(true, false) {
		n, _ := g.Conn.Write(p[:1])
		return n, os.ErrDeadlineExceeded
	}
	return g.Conn.Write(p)
}

func newGated(t *testing.T, timeout time.Duration) (*batchConn, *gateConn, net.Conn) {
	server, client := net.Pipe()
	t.Cleanup(func() { server.Close(); client.Close() })
	g := &gateConn{Conn: server, entered: make(chan struct{}), gate: make(chan struct{})}
	var pool sync.Pool
	return newBatchConn(g, &pool, timeout), g, client
}

// A pong's SetWriteDeadline (the reader's goroutine) racing the writer after an idle spell: the
// writer must not trust a deadline the socket does not have yet, or it writes under the old,
// expired one and the connection is dropped for nothing.
func TestDeadlineSetWhileTheWriterFlushes(t *testing.T) {
	const timeout = 50 * time.Millisecond
	bc, g, client := newGated(t, timeout)
	go io.Copy(io.Discard, client)
	if err := bc.writeText([]byte("first"), nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * timeout) // idle: the socket's deadline has passed
	g.hook.Store(true)
	go bc.SetWriteDeadline(time.Now().Add(timeout)) // gorilla's WriteControl(Pong, …)
	<-g.entered
	// The preempted goroutine gets the CPU back a little later.
	time.AfterFunc(10*time.Millisecond, func() { close(g.gate) })
	if err := bc.writeText([]byte("event"), nil); err != nil {
		t.Fatalf("writer's frame after an idle spell, racing a pong: %v (connection dropped)", err)
	}
}

// A control frame gorilla writes straight to the socket (the reader's pong, outside a batch)
// fails part-way: the writer must not send its next frame after half a pong, which the client
// would read as a corrupt stream; the socket's error stands for it too.
func TestFailedControlFrameStopsTheWriter(t *testing.T) {
	bc, g, client := newGated(t, time.Second)
	go io.Copy(io.Discard, client)
	g.failNext.Store(true)
	pong := []byte{0x80 | websocket.PongMessage, 0}
	if _, err := bc.Write(pong); err == nil {
		t.Fatal("want the pong's write to fail")
	}
	if err := bc.writeText([]byte("event"), nil); err == nil {
		t.Fatal("writer's frame went out after a partly written pong; want the socket's error")
	}
}
