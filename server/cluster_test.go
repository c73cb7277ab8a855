package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/graph/scalar"
	"github.com/eventgate/eventgate/server/servertest"
	"github.com/eventgate/eventgate/server/store/pgtest"
)

// TestTwoInstancesShareOnePostgres runs two real eventgate processes on one database: events
// published on both reach a subscriber on each, in the same order with no gap, and each of
// 3 webhooks × 2,000 events is attempted exactly once across both instances.
func TestTwoInstancesShareOnePostgres(t *testing.T) {
	url := pgtest.Schema(t)
	receiver := servertest.NewReceiver(t)
	env := func() map[string]string {
		return map[string]string{
			"EVENTGATE_DATABASE_URL": url, "EVENTGATE_SECRET_KEY": servertest.TestSecretKey,
			"EVENTGATE_ADMIN_TOKEN": servertest.AdminToken, "EVENTGATE_ALLOWED_TARGETS": "127.0.0.0/8",
			"EVENTGATE_PUBLISH_RATE": "100000", "EVENTGATE_DATABASE_MAX_CONNS": "8",
		}
	}
	// Started together: migrations and the bootstrap token take turns under the advisory lock.
	var a, b *servertest.Process
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a = servertest.StartProcess(t, env()) }()
	go func() { defer wg.Done(); b = servertest.StartProcess(t, env()) }()
	wg.Wait()
	ia, ib := a.Instance(), b.Instance()

	for i := 0; i < 3; i++ {
		ia.MustGraphQL(servertest.AdminToken, createWebhook, webhookInput(map[string]any{
			"name": fmt.Sprintf("hook-%d", i), "url": receiver.URL, "eventTypes": []string{"user.created"}}), nil)
	}
	const total, batch = 2000, 100
	subA, subB := ia.Subscriber(servertest.AdminToken), ib.Subscriber(servertest.AdminToken)
	// From the start of the log: no event can slip in before a subscription runs.
	fromStart := map[string]any{"after": string(scalar.CursorFor(0))}
	subA.Subscribe("1", eventsSubscription, fromStart)
	subB.Subscribe("1", eventsSubscription, fromStart)

	var pub sync.WaitGroup
	for w, inst := range []*servertest.Instance{ia, ib, ia, ib} {
		pub.Add(1)
		go func(w int, inst *servertest.Instance) {
			defer pub.Done()
			for i := 0; i < total/4; i += batch {
				publishBatch(t, inst, w*total+i, batch)
			}
		}(w, inst)
	}
	gotA := collect(t, subA, total)
	gotB := collect(t, subB, total)
	pub.Wait()
	for i := range gotA {
		if gotA[i] != gotB[i] {
			t.Fatalf("event %d: instance A got %s, B got %s: orders differ", i, gotA[i], gotB[i])
		}
	}
	if log := allCursors(t, ia, ""); strings.Join(log, ",") != strings.Join(gotA, ",") {
		t.Fatalf("subscribers' order differs from the log order (%d vs %d events)", len(gotA), len(log))
	}

	servertest.WaitFor(t, 60*time.Second, "6,000 webhook requests", func() bool { return receiver.Total() >= 3*total })
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
	attempts := receiver.Attempts()
	if len(attempts) != 3*total {
		t.Fatalf("got %d distinct (event, webhook) pairs, want %d", len(attempts), 3*total)
	}
	for pair, n := range attempts {
		if n != 1 {
			t.Fatalf("%v attempted %d times across the instances, want exactly 1", pair, n)
		}
	}
}

// collect reads n events from a subscription and returns their cursors.
func collect(t *testing.T, c *servertest.WSClient, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for len(out) < n {
		m := c.Read()
		if m.Type == "ping" {
			c.Send(servertest.WSMessage{Type: "pong"})
			continue
		}
		var p struct {
			Data struct{ Events streamedEvent }
		}
		if m.Type != "next" || json.Unmarshal(m.Payload, &p) != nil {
			t.Fatalf("got %s %s after %d events", m.Type, m.Payload, len(out))
		}
		out = append(out, p.Data.Events.Cursor)
	}
	return out
}

// TestNotificationConnectionRestart kills the relay's LISTEN connection mid-stream: subscribers
// miss nothing, because the relay catches up from the log when it reconnects.
func TestNotificationConnectionRestart(t *testing.T) {
	eg := servertest.StartPostgres(t, func(c *configT) { c.PublishRate = 1e6; c.PublishBurst = 1e6 })
	servertest.WaitFor(t, 10*time.Second, "the notification listener", func() bool { return eg.App.ListenerPID() != 0 })
	c := eg.Subscriber(servertest.AdminToken)
	c.Subscribe("1", eventsSubscription, map[string]any{"after": string(scalar.CursorFor(0))})

	admin, err := sql.Open("pgx", pgtest.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	done := make(chan struct{})
	var killed uint32
	go func() {
		defer close(done)
		for i := 0; i < 30; i++ {
			publishBatch(t, eg, i*20, 20)
			if i%10 == 5 {
				// Cut the current connection (waiting for the relay to have replaced the last one).
				for pid := eg.App.ListenerPID(); ; pid = eg.App.ListenerPID() {
					if pid != killed {
						killed = pid
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				var ok bool
				if err := admin.QueryRowContext(context.Background(), "SELECT pg_terminate_backend($1)", killed).Scan(&ok); err != nil || !ok {
					t.Errorf("terminate listener %d: %v %v", killed, ok, err)
				}
			}
		}
	}()
	got := collect(t, c, 600)
	<-done
	if want := allCursors(t, eg, ""); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("subscriber got %d events, log has %d: something was lost or reordered", len(got), len(want))
	}
}
