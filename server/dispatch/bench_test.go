package dispatch

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/delivery"
	"github.com/eventgate/eventgate/server/netguard"
	"github.com/eventgate/eventgate/server/secretbox"
	"github.com/eventgate/eventgate/server/store"
	"github.com/eventgate/eventgate/server/store/pgtest"
)

// drainSize is the number of deliveries one benchmark iteration drains.
const drainSize = 2000

// drainConcurrency is the request concurrency of both the dispatcher and the raw client.
const drainConcurrency = 16

// drainShape is what one benchmark iteration drains: events × webhooks deliveries, each webhook
// taking perWebhook requests in flight, drainConcurrency in all.
type drainShape struct {
	events, webhooks, perWebhook int
}

// oneWebhook drains drainSize deliveries of one webhook.
var oneWebhook = drainShape{events: drainSize, webhooks: 1, perWebhook: drainConcurrency}

// backlog is scenario 4 of cmd/eventgate-bench: 20,000 deliveries shared by 4 webhooks, 4 in
// flight each. Claims there must not read past the other webhooks' backlogs.
var backlog = drainShape{events: 5000, webhooks: 4, perWebhook: 4}

// BenchmarkDrain measures how fast the dispatcher drains pending deliveries to a local receiver,
// against a raw net/http client posting the same bodies with the same concurrency (the "raw"
// case). Compare the deliveries/s metrics. The one-webhook cases drain drainSize deliveries per
// iteration; the backlog case 20,000 (run it with -benchtime 1x or 2x).
func BenchmarkDrain(b *testing.B) {
	for _, sync := range []string{"full", "normal"} {
		b.Run("dispatcher/sqlite_sync="+sync, func(b *testing.B) {
			st, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sync)
			if err != nil {
				b.Fatal(err)
			}
			benchDispatcher(b, st, oneWebhook)
		})
	}
	b.Run("dispatcher/postgres", func(b *testing.B) {
		st, err := store.OpenPostgres(context.Background(), pgtest.Schema(b), 8)
		if err != nil {
			b.Fatal(err)
		}
		benchDispatcher(b, st, oneWebhook)
	})
	b.Run("dispatcher/backlog/sqlite_sync=full", func(b *testing.B) {
		st, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "bench.db"), "full")
		if err != nil {
			b.Fatal(err)
		}
		benchDispatcher(b, st, backlog)
	})
	b.Run("raw", benchRaw)
}

func drainReceiver(b *testing.B) *httptest.Server {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	b.Cleanup(srv.Close)
	return srv
}

func benchDispatcher(b *testing.B, st *store.Store, shape drainShape) {
	ctx := context.Background()
	b.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	key := make([]byte, secretbox.KeySize)
	_, _ = rand.Read(key)
	box, _ := secretbox.New(key)
	e := &testEnv{client: st.Client, box: box, guard: netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, nil)}

	srv := drainReceiver(b)
	hooksTo := make([]*ent.Webhook, shape.webhooks)
	for i := range hooksTo {
		hooksTo[i], _ = e.webhook(b, srv.URL)
	}
	events := make([]*ent.Event, 0, shape.events)
	for start := 0; start < shape.events; start += 500 {
		creates := make([]*ent.EventCreate, 0, 500)
		for range min(500, shape.events-start) {
			creates = append(creates, st.Client.Event.Create().
				SetEventID(randomID(b)).SetType("user.created").SetPayload([]byte(userPayload)).
				SetPayloadHash("x").SetOccurredAt(time.Date(2026, 1, 2, 15, 4, 5, 123000000, time.UTC)))
		}
		evs, err := st.Client.Event.CreateBulk(creates...).Save(ctx)
		if err != nil {
			b.Fatal(err)
		}
		events = append(events, evs...)
	}
	size := int64(shape.events * shape.webhooks)

	var succeeded atomic.Int64
	target := make(chan struct{}, 1)
	var want atomic.Int64
	hooks := Hooks{DeliveryChanged: func(_ context.Context, d *ent.Delivery) {
		if d.Status == delivery.StatusSUCCESS && succeeded.Add(1) == want.Load() {
			target <- struct{}{}
		}
	}}
	cfg := Config{
		Dialect:            st.Dialect,
		Workers:            drainConcurrency,
		PerWebhookInFlight: shape.perWebhook,
		InstanceID:         "bench",
	}
	d := New(st.Client, box, e.guard, cfg, hooks, slog.New(slog.DiscardHandler))
	d.Start(ctx)
	b.Cleanup(func() { _ = d.Stop(context.Background()) })

	b.ResetTimer()
	var total, cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		want.Store(succeeded.Load() + size)
		now := time.Now().UTC()
		// Webhook by webhook, as replayEvents makes them: in due order, one webhook's
		// deliveries come before the next one's.
		for _, w := range hooksTo {
			for start := 0; start < len(events); start += 500 {
				creates := make([]*ent.DeliveryCreate, 0, 500)
				for _, ev := range events[start:min(start+500, len(events))] {
					creates = append(creates, st.Client.Delivery.Create().
						SetWebhookID(w.ID).SetEventID(ev.ID).SetEventType(ev.Type).SetNextAttemptAt(now))
				}
				if err := st.Client.Delivery.CreateBulk(creates...).Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StartTimer()
		began, cpu0 := time.Now(), cpuTime()
		d.Wake()
		select {
		case <-target:
		case <-time.After(5 * time.Minute):
			b.Fatalf("drained %d of %d", succeeded.Load()-(want.Load()-size), size)
		}
		total += time.Since(began)
		cpu += cpuTime() - cpu0
	}
	reportDrain(b, int(size), total, cpu)
}

// reportDrain reports the drain rate and the CPU time (user and system, of the whole process:
// dispatcher, client and receiver) per delivery, which varies less than the rate on a shared
// machine.
func reportDrain(b *testing.B, size int, wall, cpu time.Duration) {
	n := float64(b.N * size)
	b.ReportMetric(n/wall.Seconds(), "deliveries/s")
	b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/delivery")
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchRaw(b *testing.B) {
	srv := drainReceiver(b)
	ev := &ent.Event{EventID: "evt_bench", Type: "user.created", Payload: []byte(userPayload), OccurredAt: time.Now()}
	body := requestBody("STANDARD", ev)
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4 * drainConcurrency, MaxIdleConnsPerHost: drainConcurrency}}
	b.Cleanup(client.CloseIdleConnections)

	b.ResetTimer()
	var total, cpu time.Duration
	for i := 0; i < b.N; i++ {
		began, cpu0 := time.Now(), cpuTime()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range drainConcurrency {
			wg.Go(func() {
				for next.Add(1) <= drainSize {
					req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
		total += time.Since(began)
		cpu += cpuTime() - cpu0
	}
	reportDrain(b, drainSize, total, cpu)
}
