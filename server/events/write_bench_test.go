package events

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/server/eventbus"
	"github.com/eventgate/eventgate/server/store/sqlitetest"
)

// BenchmarkPublish is ingest as scenario 3 of cmd/eventgate-bench drives it, without HTTP and
// GraphQL: concurrent callers publish one event each, every event is subscribed by 10 webhooks,
// on an SQLite file with synchronous=FULL. It reports the CPU time of the process per event (the
// event row, its 10 delivery rows, the group commit), steadier than the rate on a shared machine.
func BenchmarkPublish(b *testing.B) {
	for _, hooks := range []int{0, 10} {
		b.Run(fmt.Sprintf("webhooks=%d", hooks), func(b *testing.B) {
			ctx := context.Background()
			st := sqlitetest.Open(b, "full")
			for i := range hooks {
				if err := st.Client.Webhook.Create().SetName(fmt.Sprintf("h%d", i)).SetURL("http://127.0.0.1:1/").
					SetEventTypes([]string{"user.created"}).SetSecretCiphertext([]byte("x")).Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
			svc := NewService(st.Client, eventbus.New[*ent.Event](), eventbus.New[*ent.Delivery](),
				Options{PublishRate: 1e9, PublishBurst: 1e9}, slog.New(slog.DiscardHandler))
			const callers = 16
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			began, cpu0 := time.Now(), processCPU()
			for range callers {
				wg.Go(func() {
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						payload, _ := json.Marshal(map[string]any{"user_id": i, "username": "bench", "email": "someone@example.com", "auth_type": "telegram"})
						if _, _, err := svc.Publish(ctx, []Input{{Type: "user.created", Payload: payload}}, func(int) string { return "" }); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "events/s")
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
		})
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
