package dispatch

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"entgo.io/ent/dialect"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/delivery"
)

// TestReviewImmediateRetriesReclaimedInRecordTx: retries due at once are claimed again by the
// claim that runs in the transaction recording them (a row that transaction just wrote). Every
// attempt must be made and recorded once, numbered 1…n, on both databases.
func TestReviewImmediateRetriesReclaimedInRecordTx(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		var mu sync.Mutex
		seen := map[string][]int{} // delivery id → attempt numbers sent
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
			n, _ := strconv.Atoi(r.Header.Get("X-Webhook-Attempt"))
			mu.Lock()
			seen[r.Header.Get("X-Webhook-Delivery")] = append(seen[r.Header.Get("X-Webhook-Delivery")], n)
			mu.Unlock()
			w.WriteHeader(http.StatusInternalServerError)
		})
		var hooks []*ent.Webhook
		for range 3 {
			w, _ := e.webhook(t, rc.URL)
			hooks = append(hooks, w)
		}
		var ids []int
		for i := range 60 {
			ids = append(ids, e.deliver(t, hooks[i%3], e.event(t, "user.created", userPayload)).ID)
		}
		cfg := testConfig()
		cfg.Schedule = []time.Duration{0, 0, 0}
		cfg.FailuresToDisable = 1000
		e.start(t, cfg, Hooks{})
		for _, id := range ids {
			got := e.waitStatus(t, id, delivery.StatusFAILED)
			if got.AttemptCount != 4 || got.ClaimedBy != nil {
				t.Errorf("delivery %d: %d attempts, claimed by %v; want 4, unclaimed", id, got.AttemptCount, got.ClaimedBy)
			}
			as := e.attempts(t, id)
			if len(as) != 4 {
				t.Errorf("delivery %d: %d attempts recorded, want 4", id, len(as))
				continue
			}
			for i, a := range as {
				if a.Number != i+1 {
					t.Errorf("delivery %d: attempt %d numbered %d", id, i+1, a.Number)
				}
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			got := seen[strconv.Itoa(id)]
			if len(got) != 4 || got[0] != 1 || got[1] != 2 || got[2] != 3 || got[3] != 4 {
				t.Errorf("delivery %d: attempts sent %v, want [1 2 3 4]", id, got)
			}
		}
	})
}

// TestReviewStopReleasesDeepQueue: a fast lane holds many claimed jobs when Stop comes; every
// claim not sent is given back, nothing is recorded for it, and no claim is left behind.
func TestReviewStopReleasesDeepQueue(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		var slow atomic.Bool
		rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
			if slow.Load() {
				time.Sleep(50 * time.Millisecond)
			}
			w.WriteHeader(http.StatusOK)
		})
		w, _ := e.webhook(t, rc.URL)
		ev := e.event(t, "user.created", userPayload)
		for range 800 {
			e.deliver(t, w, ev)
		}
		cfg := testConfig()
		cfg.ShutdownTimeout = 5 * time.Second
		d := e.newDispatcher(cfg, Hooks{})
		d.Start(context.Background())
		waitFor(t, func() bool { return rc.count() >= 60 }, "the lane to warm up")
		slow.Store(true)
		if err := d.Stop(context.Background()); err != nil {
			t.Fatalf("stop: %v", err)
		}
		ctx := context.Background()
		if n := e.client.Delivery.Query().Where(delivery.ClaimedByNotNil()).CountX(ctx); n != 0 {
			t.Errorf("got %d deliveries still claimed after Stop, want 0", n)
		}
		success := e.client.Delivery.Query().Where(delivery.StatusEQ(delivery.StatusSUCCESS)).CountX(ctx)
		attempts := e.client.DeliveryAttempt.Query().CountX(ctx)
		if success != rc.count() || attempts != rc.count() {
			t.Errorf("got %d requests, %d SUCCESS, %d attempts; want them equal", rc.count(), success, attempts)
		}
		if n := e.client.Delivery.Query().Where(delivery.StatusEQ(delivery.StatusPENDING), delivery.AttemptCountNEQ(0)).CountX(ctx); n != 0 {
			t.Errorf("got %d PENDING deliveries with attempts, want 0", n)
		}
	})
}

// TestReviewBooksBalanceAfterMixedOutcomes runs successes, retries, a 410 and a webhook disabled
// by an admin through the lanes, then stops: once the coordinator has returned, every lane's
// count of claimed deliveries is back to zero and no delivery is left claimed.
func TestReviewBooksBalanceAfterMixedOutcomes(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		okRc := newReceiver(t, status(http.StatusOK))
		flaky := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int) {
			if n%3 == 0 {
				w.WriteHeader(http.StatusOK)
				return
			}
			w.WriteHeader(http.StatusInternalServerError)
		})
		gone := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int) {
			if n > 10 {
				w.WriteHeader(http.StatusGone)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		slow := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
			time.Sleep(5 * time.Millisecond)
			w.WriteHeader(http.StatusOK)
		})
		var hooks []*ent.Webhook
		for _, rc := range []*receiver{okRc, flaky, gone, slow} {
			w, _ := e.webhook(t, rc.URL)
			hooks = append(hooks, w)
		}
		for i := range 400 {
			e.deliver(t, hooks[i%len(hooks)], e.event(t, "user.created", userPayload))
		}
		cfg := testConfig()
		cfg.FailuresToDisable = 1000
		d := e.newDispatcher(cfg, Hooks{})
		d.Start(context.Background())
		waitFor(t, func() bool { return slow.count() >= 20 }, "the slow webhook's requests")
		if err := e.client.Webhook.UpdateOneID(hooks[3].ID).SetIsActive(false).Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return okRc.count() == 100 }, "the good webhook's deliveries")
		time.Sleep(300 * time.Millisecond)
		if err := d.Stop(context.Background()); err != nil {
			t.Fatalf("stop: %v", err)
		}
		// The coordinator has returned (Stop waited for it): its state is ours to read.
		if n := len(d.co.inflight); n != 0 {
			t.Errorf("%d jobs left in flight", n)
		}
		for id, l := range d.co.lanes {
			if l.claimed != 0 {
				t.Errorf("lane %d: claimed %d after Stop, want 0", id, l.claimed)
			}
			l.mu.Lock()
			if l.head != len(l.queue) || l.workers != 0 {
				t.Errorf("lane %d: %d jobs queued and %d workers after Stop", id, len(l.queue)-l.head, l.workers)
			}
			l.mu.Unlock()
		}
		if n := e.client.Delivery.Query().Where(delivery.ClaimedByNotNil()).CountX(context.Background()); n != 0 {
			t.Errorf("%d deliveries still claimed after Stop", n)
		}
	})
}

// TestReviewTwoInstancesClaimDisjointly: two instances share a PostgreSQL database and drain
// several webhooks' backlogs with the claim in the record transaction and SKIP LOCKED; every
// delivery is sent once and recorded once.
func TestReviewTwoInstancesClaimDisjointly(t *testing.T) {
	e := newEnvOn(t, openPostgres(t))
	e.dialect = dialect.Postgres
	var mu sync.Mutex
	seen := map[string]int{}
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		mu.Lock()
		seen[r.Header.Get("X-Webhook-Delivery")]++
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	var hooks []*ent.Webhook
	for range 4 {
		w, _ := e.webhook(t, rc.URL)
		hooks = append(hooks, w)
	}
	var ids []int
	ev := e.event(t, "user.created", userPayload)
	for i := range 1200 {
		ids = append(ids, e.deliver(t, hooks[i%len(hooks)], ev).ID)
	}
	for _, name := range []string{"instance-a", "instance-b"} {
		cfg := testConfig()
		cfg.InstanceID = name
		e.start(t, cfg, Hooks{})
	}
	waitFor(t, func() bool {
		n, err := e.client.Delivery.Query().Where(delivery.StatusEQ(delivery.StatusSUCCESS)).Count(context.Background())
		return err == nil && n == len(ids)
	}, "every delivery to succeed")
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if n := seen[strconv.Itoa(id)]; n != 1 {
			t.Errorf("delivery %d sent %d times, want 1", id, n)
		}
	}
	if n := e.client.DeliveryAttempt.Query().CountX(context.Background()); n != len(ids) {
		t.Errorf("got %d attempts, want %d", n, len(ids))
	}
}
