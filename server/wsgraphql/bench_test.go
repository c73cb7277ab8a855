package wsgraphql_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/server/wsgraphql"
)

// BenchmarkIdleSubscribedConnection measures the memory an idle connection with one live
// subscription costs, as heap plus goroutine stacks per connection. The clients (small
// buffers, no goroutine) and the test source's resolver goroutine run in the same process and
// are counted too, so the figure is an upper bound of the transport's share.
//
//	go test -run '^$' -bench IdleSubscribed ./server/wsgraphql/
func BenchmarkIdleSubscribedConnection(b *testing.B) {
	const conns = 1000
	f := newFixture(b, wsgraphql.Config{}, false)
	dialer := websocket.Dialer{
		Subprotocols:    []string{tws},
		ReadBufferSize:  256,
		WriteBufferSize: 256,
		WriteBufferPool: &noPool{},
	}
	init := []byte(`{"type":"connection_init","payload":{"token":"alice-token"}}`)
	sub := []byte(`{"id":"1","type":"subscribe","payload":{"query":"subscription { events { cursor } }"}}`)
	for b.Loop() {
		before, goroutines := memInUse(), runtime.NumGoroutine()
		clients := make([]*websocket.Conn, 0, conns)
		for range conns {
			ws, resp, err := dialer.Dial(f.url, nil)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if err := ws.WriteMessage(websocket.TextMessage, init); err != nil {
				b.Fatal(err)
			}
			if _, _, err := ws.ReadMessage(); err != nil {
				b.Fatal(err)
			}
			if err := ws.WriteMessage(websocket.TextMessage, sub); err != nil {
				b.Fatal(err)
			}
			clients = append(clients, ws)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		if err := f.src.WaitSubscribers(ctx, conns); err != nil {
			b.Fatal(err)
		}
		cancel()
		after := memInUse()
		b.ReportMetric(float64(after.heap-before.heap)/conns, "heap-B/conn")
		b.ReportMetric(float64(after.stack-before.stack)/conns, "stack-B/conn")
		b.ReportMetric(float64(after.heap+after.stack-before.heap-before.stack)/conns, "B/conn")
		b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/conns, "goroutines/conn")
		for _, ws := range clients {
			ws.Close()
		}
		ctx, cancel = context.WithTimeout(context.Background(), wait)
		if err := f.src.WaitSubscribers(ctx, 0); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
}

// noPool makes the client take a write buffer only while writing, like the server.
type noPool struct{}

func (*noPool) Get() any  { return nil }
func (*noPool) Put(x any) {}

// mem is what the benchmark counts: heap in use and goroutine stacks.
type mem struct{ heap, stack int64 }

func memInUse() mem {
	// Several collections, so that stacks grown while setting up have been shrunk back.
	for range 6 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return mem{heap: int64(m.HeapInuse), stack: int64(m.StackInuse)}
}
