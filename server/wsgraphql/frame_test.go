package wsgraphql

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

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
// prefix followed by the shared payload and "}", joined in the writer's scratch buffer. The
// "marshal" case is the former way, json.Marshal per
// subscriber, for comparison.
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
			var scratch []byte
			for _, e := range encs {
				f := e.Next(shared)
				// What the writer does with it: join the parts in its scratch buffer.
				scratch = append(append(scratch[:0], f.Data...), f.Tail...)
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
	bc := newBatchConn(counted, &pool)
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
