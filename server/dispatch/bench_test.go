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

// BenchmarkDrain measures how fast the dispatcher drains drainSize pending deliveries of one
// webhook to a local receiver, against a raw net/http client posting the same bodies with the
// same concurrency (the "raw" case). Compare the deliveries/s metrics.
func BenchmarkDrain(b *testing.B) {
	for _, sync := range []string{"full", "normal"} {
		b.Run("dispatcher/sqlite_sync="+sync, func(b *testing.B) {
			st, err := store.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sync)
			if err != nil {
				b.Fatal(err)
			}
			benchDispatcher(b, st)
		})
	}
	b.Run("dispatcher/postgres", func(b *testing.B) {
		st, err := store.OpenPostgres(context.Background(), pgtest.Schema(b), 8)
		if err != nil {
			b.Fatal(err)
		}
		benchDispatcher(b, st)
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

func benchDispatcher(b *testing.B, st *store.Store) {
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
	w, _ := e.webhook(b, srv.URL)
	events := make([]*ent.Event, drainSize)
	for i := range events {
		events[i] = e.event(b, "user.created", userPayload)
	}

	var succeeded atomic.Int64
	target := make(chan struct{}, 1)
	var want atomic.Int64
	hooks := Hooks{DeliveryChanged: func(_ context.Context, d *ent.Delivery) {
		if d.Status == delivery.StatusSUCCESS && succeeded.Add(1) == want.Load() {
			target <- struct{}{}
		}
	}}
	cfg := Config{
		Workers:            drainConcurrency,
		PerWebhookInFlight: drainConcurrency,
		InstanceID:         "bench",
	}
	d := New(st.Client, box, e.guard, cfg, hooks, slog.New(slog.DiscardHandler))
	d.Start(ctx)
	b.Cleanup(func() { _ = d.Stop(context.Background()) })

	b.ResetTimer()
	var total, cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		want.Store(succeeded.Load() + drainSize)
		now := time.Now().UTC()
		for start := 0; start < drainSize; start += 500 {
			creates := make([]*ent.DeliveryCreate, 0, 500)
			for _, ev := range events[start:min(start+500, drainSize)] {
				creates = append(creates, st.Client.Delivery.Create().
					SetWebhookID(w.ID).SetEventID(ev.ID).SetEventType(ev.Type).SetNextAttemptAt(now))
			}
			if err := st.Client.Delivery.CreateBulk(creates...).Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		began, cpu0 := time.Now(), cpuTime()
		d.Wake()
		select {
		case <-target:
		case <-time.After(5 * time.Minute):
			b.Fatalf("drained %d of %d", succeeded.Load()-(want.Load()-drainSize), drainSize)
		}
		total += time.Since(began)
		cpu += cpuTime() - cpu0
	}
	reportDrain(b, total, cpu)
}

// reportDrain reports the drain rate and the CPU time (user and system, of the whole process:
// dispatcher, client and receiver) per delivery, which varies less than the rate on a shared
// machine.
func reportDrain(b *testing.B, wall, cpu time.Duration) {
	n := float64(b.N * drainSize)
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
	reportDrain(b, total, cpu)
}
