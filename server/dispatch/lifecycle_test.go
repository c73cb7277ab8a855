package dispatch

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/delivery"
	"github.com/eventgate/eventgate/server/store/sqlitetest"
)

// TestGoneStopsTheLaneAtOnce: once a receiver answered 410 Gone, the webhook is disabled
// "at once" (DESIGN.md §6) and its other deliveries wait PENDING. Only the requests already in
// flight when the 410 came may still go out; a fast lane's queued jobs must not keep being sent
// (each would end FAILED, as 410 is final) while the 410 waits to be recorded.
func TestGoneStopsTheLaneAtOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		const warm = 40 // successes first, so that the lane is fast and prefetches deeply
		rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int) {
			if n <= warm {
				w.WriteHeader(http.StatusOK)
				return
			}
			w.WriteHeader(http.StatusGone)
		})
		w, _ := e.webhook(t, rc.URL)
		e.deliverMany(t, w, e.event(t, "user.created", userPayload), 400)
		cfg := testConfig()
		e.start(t, cfg, Hooks{})
		waitFor(t, func() bool { return !e.webhookRow(t, w.ID).IsActive }, "the webhook to be disabled")
		waitFor(t, func() bool {
			n, err := e.client.Delivery.Query().Where(delivery.ClaimedByNotNil()).Count(context.Background())
			return err == nil && n == 0
		}, "the lane to give back its claims")
		failed, err := e.client.Delivery.Query().Where(delivery.StatusEQ(delivery.StatusFAILED)).Count(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		gone := rc.count() - warm
		t.Logf("requests answered 410: %d; deliveries FAILED: %d", gone, failed)
		if gone > cfg.PerWebhookInFlight {
			t.Errorf("got %d requests after the first 410 Gone (%d deliveries FAILED), want at most the %d that may be in flight",
				gone, failed, cfg.PerWebhookInFlight)
		}
	})
}

// TestDisabledWebhookQueueStops: an admin disables a webhook while its lane holds claimed
// jobs. "A disabled webhook gets no new deliveries and its PENDING ones wait" (DESIGN.md §6):
// beyond the requests in flight and what one poll interval lets through, no more requests may go
// out.
func TestDisabledWebhookQueueStops(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		rc := newReceiver(t, slowOK)
		w, _ := e.webhook(t, rc.URL)
		e.deliverMany(t, w, e.event(t, "user.created", userPayload), 600)
		cfg := testConfig()
		cfg.PerWebhookInFlight = 2
		d := e.start(t, cfg, Hooks{})
		waitFor(t, func() bool { return rc.count() >= 40 }, "the lane to warm up")
		if err := e.client.Webhook.UpdateOneID(w.ID).SetIsActive(false).SetDisabledReason("admin").Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
		at := rc.count()
		d.Wake()
		time.Sleep(time.Second)
		after := rc.count() - at
		claimed, _ := e.client.Delivery.Query().Where(delivery.ClaimedByNotNil()).Count(context.Background())
		t.Logf("requests after the webhook was disabled: %d (in 1s); still claimed: %d", after, claimed)
		// In flight at the disable, plus one poll interval's worth at 10 ms a request.
		allowed := cfg.PerWebhookInFlight + cfg.PerWebhookInFlight*int(cfg.PollInterval/(10*time.Millisecond))
		if after > allowed {
			t.Errorf("got %d requests to a disabled webhook, want at most %d", after, allowed)
		}
	})
}

// TestImmediateRetriesReclaimedInRecordTx: retries due at once are claimed again by the
// claim that runs in the transaction recording them (a row that transaction just wrote). Every
// attempt must be made and recorded once, numbered 1…n, on both databases.
func TestImmediateRetriesReclaimedInRecordTx(t *testing.T) {
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
		hooks := e.webhooks(t, rc.URL, 3)
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

// TestStopReleasesDeepQueue: a fast lane holds many claimed jobs when Stop comes; every
// claim not sent is given back, nothing is recorded for it, and no claim is left behind.
func TestStopReleasesDeepQueue(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		var slow atomic.Bool
		rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
			if slow.Load() {
				time.Sleep(50 * time.Millisecond)
			}
			w.WriteHeader(http.StatusOK)
		})
		w, _ := e.webhook(t, rc.URL)
		e.deliverMany(t, w, e.event(t, "user.created", userPayload), 800)
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

// faultDriver fails, once, the next statement that fail matches (inside transactions too).
type faultDriver struct {
	watchDriver
	mu   sync.Mutex
	fail func(query string) bool
	hit  bool
}

var errInjected = errors.New("injected fault")

func newFaultDriver(drv dialect.Driver) *faultDriver {
	f := &faultDriver{}
	f.watchDriver = watchDriver{Driver: drv, before: f.check}
	return f
}

func (f *faultDriver) check(query string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil && f.fail(query) {
		f.fail, f.hit = nil, true
		return errInjected
	}
	return nil
}

func (f *faultDriver) arm(match func(string) bool) {
	f.mu.Lock()
	f.fail, f.hit = match, false
	f.mu.Unlock()
}

func (f *faultDriver) fired() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hit
}

// prepare sets up what Start sets up, without running the coordinator: the test goroutine
// then plays the coordinator, calling its methods one at a time. runCoordinator hands over.
func prepare(d *Dispatcher) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.started = true
	base := context.Background()
	d.quitCtx, d.quit = context.WithCancel(base)
	d.jobCtx, d.cancelJobs = context.WithCancel(base)
	d.dbCtx, d.cancelDB = context.WithCancel(base)
}

// runCoordinator starts the coordinator of a prepared dispatcher and stops it when the test ends.
func runCoordinator(t *testing.T, d *Dispatcher) {
	go d.run(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

// TestRolledBackClaimKeepsLeases: a claim that finds one of this instance's requests in
// flight with its lease run out (renew failed, say) "renews" it by claiming it again, and sets the
// job's lease to the new one at once. When that claim's transaction is rolled back, the row keeps
// the old lease, but the job holds the new one: the fence then fails, the outcome is thrown away
// as "taken over", and the delivery — whose request was made and answered 200 — is sent again
// later.
func TestRolledBackClaimKeepsLeases(t *testing.T) {
	st := sqlitetest.Open(t, "normal")
	fd := newFaultDriver(entsql.OpenDB(dialect.SQLite, st.DB))
	e := newEnvOn(t, ent.NewClient(ent.Driver(fd)))
	held, release := heldReceiver(t)
	ok := newReceiver(t, status(http.StatusOK))
	w1, _ := e.webhook(t, held.URL)
	w2, _ := e.webhook(t, ok.URL)
	x := e.deliver(t, w1, e.event(t, "user.created", userPayload))

	d := e.newDispatcher(testConfig(), Hooks{})
	prepare(d)
	d.claimAlone(true)
	waitFor(t, func() bool { return held.count() == 1 }, "the request of x")
	j := d.co.inflight[x.ID]
	if j == nil {
		t.Fatal("x not in flight")
	}

	// The lease of x ran out while its request is in flight (renewals failed): row and job agree.
	ctx := context.Background()
	expired := time.Now().UTC().Add(-time.Second).Truncate(time.Microsecond)
	if err := e.client.Delivery.UpdateOneID(x.ID).SetClaimedUntil(expired).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	j.claimedUntil = expired

	// The next claim takes y and re-claims x; loading y's event fails, so it is rolled back.
	y := e.deliver(t, w2, e.event(t, "user.created", userPayload))
	fd.arm(func(q string) bool { return strings.Contains(q, "`events`") && strings.HasPrefix(q, "SELECT") })
	d.claimAlone(true)
	if !fd.fired() {
		t.Fatal("the fault was not injected")
	}
	if got := e.reload(t, x.ID); got.ClaimedUntil == nil || !got.ClaimedUntil.Equal(expired) {
		t.Fatalf("x's stored lease %v, want the old %v (the claim was rolled back)", got.ClaimedUntil, expired)
	}
	if !j.claimedUntil.Equal(expired) {
		t.Errorf("after a rolled-back claim x's job holds lease %v, the row %v", j.claimedUntil, expired)
	}

	// x's request is answered: its outcome is recorded as the only one.
	release()
	waitFor(t, func() bool { return d.inbox.len() == 1 }, "x's result")
	d.flush()
	if got := e.reload(t, x.ID); got.Status != delivery.StatusSUCCESS || got.AttemptCount != 1 {
		t.Errorf("x: got %s after %d attempts, want SUCCESS after 1 (the receiver answered 200)", got.Status, got.AttemptCount)
	}
	_ = y
	runCoordinator(t, d)
}

// TestBooksBalanceAfterMixedOutcomes runs successes, retries, a 410 and a webhook disabled
// by an admin through the lanes, then stops: once the coordinator has returned, every lane's
// count of claimed deliveries is back to zero and no delivery is left claimed.
func TestBooksBalanceAfterMixedOutcomes(t *testing.T) {
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

// TestTwoInstancesClaimDisjointly: two instances share a PostgreSQL database and drain
// several webhooks' backlogs with the claim in the record transaction and SKIP LOCKED; every
// delivery is sent once and recorded once.
func TestTwoInstancesClaimDisjointly(t *testing.T) {
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
	hooks := e.webhooks(t, rc.URL, 4)
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

// TestWebhookChangedMovesQueuedRequests edits a webhook's URL while its lane holds claimed
// requests and tells the dispatcher (as the webhooks service does after its commit): the
// requests not yet sent must go to the new URL, none to the old one after the notice.
func TestWebhookChangedMovesQueuedRequests(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		old, moved := newReceiver(t, slowOK), newReceiver(t, slowOK)
		w, _ := e.webhook(t, old.URL)
		ids := e.deliverMany(t, w, e.event(t, "user.created", userPayload), 200)
		cfg := testConfig()
		cfg.PerWebhookInFlight = 2
		d := e.start(t, cfg, Hooks{})
		waitFor(t, func() bool { return old.count() >= 20 }, "the lane to warm up")
		if err := e.client.Webhook.UpdateOneID(w.ID).SetURL(moved.URL).Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
		d.WebhookChanged(w.ID)
		atNotice := old.count()
		for _, id := range ids {
			e.waitStatus(t, id, delivery.StatusSUCCESS)
		}
		// Only the requests in flight at the notice may still reach the old URL.
		if late := old.count() - atNotice; late > cfg.PerWebhookInFlight {
			t.Errorf("%d requests went to the old URL after WebhookChanged, want at most %d", late, cfg.PerWebhookInFlight)
		}
		if moved.count() == 0 {
			t.Errorf("no request reached the new URL")
		}
	})
}
