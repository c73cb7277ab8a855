package dispatch

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/delivery"
	"github.com/eventgate/eventgate/ent/deliveryattempt"
	"github.com/eventgate/eventgate/ent/webhook"
	"github.com/eventgate/eventgate/server/netguard"
	"github.com/eventgate/eventgate/server/signing"
)

const userPayload = `{"user_id": 42, "telegram_id": 9007199254740993, "username": "ann", "extra_key": [1, 2.50]}`

// legacySignature computes the old system's header independently of the signing package.
func legacySignature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// verifyStandard checks a request with the official Standard Webhooks library.
func verifyStandard(t *testing.T, secret string, r received) error {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return wh.Verify(r.body, r.header)
}

func (e *testEnv) webhookRow(t *testing.T, id int) *ent.Webhook {
	t.Helper()
	w, err := e.client.Webhook.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// changes collects DeliveryChanged calls.
type changes struct {
	mu  sync.Mutex
	got []*ent.Delivery
}

func (c *changes) hook(_ context.Context, d *ent.Delivery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, d)
}

func (c *changes) list() []*ent.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*ent.Delivery(nil), c.got...)
}

// disablings collects WebhookDisabled calls.
type disablings struct {
	mu      sync.Mutex
	reasons map[int][]string
}

func (d *disablings) hook(_ context.Context, w *ent.Webhook, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reasons == nil {
		d.reasons = map[int][]string{}
	}
	if w.IsActive || w.DisabledReason == nil || *w.DisabledReason != reason {
		reason = "hook got a webhook that does not look disabled: " + reason
	}
	d.reasons[w.ID] = append(d.reasons[w.ID], reason)
}

func (d *disablings) of(id int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.reasons[id]...)
}

func TestRequestFormatsAndHeaders(t *testing.T) {
	tests := []struct {
		name     string
		format   webhook.PayloadFormat
		wantBody string
	}{
		{
			name:     "standard",
			format:   webhook.PayloadFormatSTANDARD,
			wantBody: `{"type":"user.created","timestamp":"2026-01-02T15:04:05.123Z","data":` + userPayload + `}`,
		},
		{
			name:     "legacy",
			format:   webhook.PayloadFormatLEGACY,
			wantBody: userPayload,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rc := newReceiver(t, status(http.StatusNoContent))
			w, secret := e.webhook(t, rc.URL+"/hook",
				func(c *ent.WebhookCreate) { c.SetPayloadFormat(tc.format) },
				e.withHeaders(t, map[string]string{
					"Authorization":   "Bearer custom-token",
					"x-webhook-event": "forged", // cannot override ours
					"webhook-id":      "forged",
				}))
			ev := e.event(t, "user.created", userPayload)
			del := e.deliver(t, w, ev)
			var ch changes
			e.start(t, testConfig(), Hooks{DeliveryChanged: ch.hook})

			got := e.waitStatus(t, del.ID, delivery.StatusSUCCESS)

			reqs := rc.requests()
			if len(reqs) != 1 {
				t.Fatalf("got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if string(r.body) != tc.wantBody {
				t.Errorf("got body %s, want %s", r.body, tc.wantBody)
			}
			if err := verifyStandard(t, secret, r); err != nil {
				t.Errorf("standard webhooks verification: %v", err)
			}
			if got, want := r.header.Get("X-Webhook-Signature"), legacySignature(secret, r.body); got != want {
				t.Errorf("got X-Webhook-Signature %q, want %q", got, want)
			}
			wantHeaders := map[string]string{
				"Content-Type":       "application/json",
				"User-Agent":         "eventgate/test",
				"Webhook-Id":         ev.EventID,
				"X-Webhook-Event":    "user.created",
				"X-Webhook-Id":       strconv.Itoa(w.ID),
				"X-Webhook-Delivery": strconv.Itoa(del.ID),
				"X-Webhook-Attempt":  "1",
				"Authorization":      "Bearer custom-token",
			}
			for name, want := range wantHeaders {
				if got := r.header.Values(name); len(got) != 1 || got[0] != want {
					t.Errorf("got header %s %q, want [%q]", name, got, want)
				}
			}
			ts, err := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64)
			if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
				t.Errorf("got webhook-timestamp %q, want the unix time of the attempt", r.header.Get("webhook-timestamp"))
			}

			if got.AttemptCount != 1 || got.DeliveredAt == nil || got.ResponseStatus == nil || *got.ResponseStatus != 204 ||
				got.NextAttemptAt != nil || got.ClaimedUntil != nil || got.ClaimedBy != nil || got.ErrorMessage != nil {
				t.Errorf("got delivery %+v, want 1 attempt, delivered, 204, no next attempt, no claim, no error", got)
			}
			as := e.attempts(t, del.ID)
			if len(as) != 1 {
				t.Fatalf("got %d attempts, want 1", len(as))
			}
			a := as[0]
			if a.Number != 1 || a.ErrorCode != nil || a.ResponseStatus == nil || *a.ResponseStatus != 204 {
				t.Errorf("got attempt number %d code %v status %v, want 1, none, 204", a.Number, a.ErrorCode, a.ResponseStatus)
			}
			wantRecorded := map[string]string{
				"webhook-signature":   redacted,
				"X-Webhook-Signature": redacted,
				"Authorization":       redacted,
				"webhook-id":          ev.EventID,
				"X-Webhook-Event":     "user.created",
				"X-Webhook-Attempt":   "1",
			}
			for name, want := range wantRecorded {
				if got := a.RequestHeaders[name]; got != want {
					t.Errorf("got recorded header %s %q, want %q", name, got, want)
				}
			}
			for name, v := range a.RequestHeaders {
				if strings.Contains(v, "custom-token") || strings.HasPrefix(v, "v1,") || strings.HasPrefix(v, "sha256=") {
					t.Errorf("recorded header %s leaks a secret: %q", name, v)
				}
			}

			wh := e.webhookRow(t, w.ID)
			if wh.SuccessCount != 1 || wh.FailureCount != 0 || wh.LastTriggeredAt == nil || !wh.UpdatedAt.Equal(w.UpdatedAt) {
				t.Errorf("got webhook success %d failure %d last triggered %v updated %v, want 1, 0, set, %v unchanged",
					wh.SuccessCount, wh.FailureCount, wh.LastTriggeredAt, wh.UpdatedAt, w.UpdatedAt)
			}
			waitFor(t, func() bool { return len(ch.list()) == 1 }, "DeliveryChanged")
			c := ch.list()[0]
			if c.ID != del.ID || c.Status != delivery.StatusSUCCESS || c.AttemptCount != 1 {
				t.Errorf("got DeliveryChanged id %d status %s attempts %d, want %d SUCCESS 1", c.ID, c.Status, c.AttemptCount, del.ID)
			}
			// The hook's delivery is the row as committed, every field of it.
			if diff := deliveryDiff(c, e.reload(t, del.ID)); diff != "" {
				t.Errorf("DeliveryChanged's delivery differs from the stored row: %s", diff)
			}
		})
	}
}

func TestSignaturesDuringRotation(t *testing.T) {
	tests := []struct {
		name        string
		oldExpires  time.Duration // from now
		wantSigs    int
		oldVerifies bool
	}{
		{name: "grace period", oldExpires: time.Hour, wantSigs: 2, oldVerifies: true},
		{name: "old secret expired", oldExpires: -time.Second, wantSigs: 1, oldVerifies: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rc := newReceiver(t, status(http.StatusOK))
			oldSecret, err := signing.GenerateSecret()
			if err != nil {
				t.Fatal(err)
			}
			w, newSecret := e.webhook(t, rc.URL, e.withOldSecret(t, oldSecret, time.Now().Add(tc.oldExpires)))
			del := e.deliver(t, w, e.event(t, "user.created", userPayload))
			e.start(t, testConfig(), Hooks{})
			e.waitStatus(t, del.ID, delivery.StatusSUCCESS)

			r := rc.requests()[0]
			sigs := strings.Fields(r.header.Get("webhook-signature"))
			if len(sigs) != tc.wantSigs {
				t.Fatalf("got %d signatures, want %d", len(sigs), tc.wantSigs)
			}
			if err := verifyStandard(t, newSecret, r); err != nil {
				t.Errorf("new secret: %v", err)
			}
			if err := verifyStandard(t, oldSecret, r); (err == nil) != tc.oldVerifies {
				t.Errorf("old secret verifies: got %v, want %v", err == nil, tc.oldVerifies)
			}
			// The newest secret signs first.
			first := received{body: r.body, header: r.header.Clone()}
			first.header.Set("webhook-signature", sigs[0])
			if err := verifyStandard(t, newSecret, first); err != nil {
				t.Errorf("first signature is not the new secret's: %v", err)
			}
			if got, want := r.header.Get("X-Webhook-Signature"), legacySignature(newSecret, r.body); got != want {
				t.Errorf("got legacy signature %q, want the new secret's %q", got, want)
			}
		})
	}
}

func TestRetriesUntilFailed(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		rc := newReceiver(t, status(http.StatusInternalServerError))
		w, _ := e.webhook(t, rc.URL)
		ev := e.event(t, "user.created", userPayload)
		del := e.deliver(t, w, ev)
		cfg := testConfig()
		cfg.Schedule = make([]time.Duration, 9) // ten attempts
		for i := range cfg.Schedule {
			cfg.Schedule[i] = time.Millisecond
		}
		cfg.Jitter = 0.2
		var ch, batched changes
		e.start(t, cfg, Hooks{DeliveryChanged: ch.hook, DeliveriesChanged: func(ctx context.Context, ds []*ent.Delivery) {
			for _, d := range ds {
				batched.hook(ctx, d)
			}
		}})

		got := e.waitStatus(t, del.ID, delivery.StatusFAILED)
		reqs := rc.requests()
		if len(reqs) != 10 {
			t.Fatalf("got %d requests, want 10", len(reqs))
		}
		for i, r := range reqs {
			if a := r.header.Get("X-Webhook-Attempt"); a != strconv.Itoa(i+1) {
				t.Errorf("request %d: got X-Webhook-Attempt %s, want %d", i+1, a, i+1)
			}
			if id := r.header.Get("webhook-id"); id != ev.EventID {
				t.Errorf("request %d: got webhook-id %s, want %s on every retry", i+1, id, ev.EventID)
			}
		}
		as := e.attempts(t, del.ID)
		if len(as) != 10 {
			t.Fatalf("got %d attempts, want 10", len(as))
		}
		for i, a := range as {
			if a.Number != i+1 || a.ErrorCode == nil || *a.ErrorCode != deliveryattempt.ErrorCodeHTTP_STATUS ||
				a.ResponseStatus == nil || *a.ResponseStatus != 500 {
				t.Errorf("attempt %d: got number %d code %v status %v, want %d HTTP_STATUS 500", i, a.Number, a.ErrorCode, a.ResponseStatus, i+1)
			}
			if i > 0 && a.RequestedAt.Before(as[i-1].RequestedAt) {
				t.Errorf("attempt %d requested before attempt %d", i+1, i)
			}
		}
		if got.AttemptCount != 10 || got.NextAttemptAt != nil || got.ErrorMessage == nil || !strings.Contains(*got.ErrorMessage, "500") {
			t.Errorf("got delivery attempts %d next %v error %v, want 10, none, a 500 message", got.AttemptCount, got.NextAttemptAt, got.ErrorMessage)
		}
		wh := e.webhookRow(t, w.ID)
		if wh.FailureCount != 1 || wh.SuccessCount != 0 || wh.ConsecutiveFailures != 1 || wh.FirstFailureAt == nil || !wh.IsActive {
			t.Errorf("got webhook failures %d successes %d in a row %d first %v active %v, want 1 0 1 set true",
				wh.FailureCount, wh.SuccessCount, wh.ConsecutiveFailures, wh.FirstFailureAt, wh.IsActive)
		}
		// Nine retries scheduled (PENDING) and the final FAILED.
		waitFor(t, func() bool { return len(ch.list()) == 10 && len(batched.list()) == 10 }, "10 changes through both hooks")
		for _, list := range [][]*ent.Delivery{ch.list(), batched.list()} {
			for i, c := range list {
				want := delivery.StatusPENDING
				if i == 9 {
					want = delivery.StatusFAILED
				}
				if c.Status != want || c.AttemptCount != i+1 {
					t.Errorf("change %d: got %s after %d attempts, want %s after %d", i, c.Status, c.AttemptCount, want, i+1)
				}
			}
		}
	})
}

func TestSuccessResetsFailureState(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int) {
			if n <= 2 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		w, _ := e.webhook(t, rc.URL, func(c *ent.WebhookCreate) {
			c.SetConsecutiveFailures(3).SetFirstFailureAt(time.Now().UTC().Add(-time.Hour))
		})
		del := e.deliver(t, w, e.event(t, "user.created", userPayload))
		e.start(t, testConfig(), Hooks{})

		got := e.waitStatus(t, del.ID, delivery.StatusSUCCESS)
		if got.AttemptCount != 3 {
			t.Errorf("got %d attempts, want 3", got.AttemptCount)
		}
		wh := e.webhookRow(t, w.ID)
		if wh.ConsecutiveFailures != 0 || wh.FirstFailureAt != nil || wh.SuccessCount != 1 {
			t.Errorf("got in a row %d first failure %v successes %d, want 0, none, 1", wh.ConsecutiveFailures, wh.FirstFailureAt, wh.SuccessCount)
		}
	})
}

func TestRetryAfterReplacesSchedule(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	w, _ := e.webhook(t, rc.URL)
	del := e.deliver(t, w, e.event(t, "user.created", userPayload))
	cfg := testConfig()
	cfg.Schedule = []time.Duration{time.Hour} // without Retry-After the retry would be an hour away
	e.start(t, cfg, Hooks{})

	e.waitStatus(t, del.ID, delivery.StatusSUCCESS)
	as := e.attempts(t, del.ID)
	if len(as) != 2 {
		t.Fatalf("got %d attempts, want 2", len(as))
	}
	if gap := as[1].RequestedAt.Sub(as[0].RequestedAt); gap < 900*time.Millisecond {
		t.Errorf("got retry %v after the 503, want at least the 1s of Retry-After", gap)
	}
}

func TestGoneDisablesWebhook(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		rc := newReceiver(t, status(http.StatusGone))
		w, _ := e.webhook(t, rc.URL)
		del := e.deliver(t, w, e.event(t, "user.created", userPayload))
		var dis disablings
		e.start(t, testConfig(), Hooks{WebhookDisabled: dis.hook})

		got := e.waitStatus(t, del.ID, delivery.StatusFAILED)
		if got.AttemptCount != 1 {
			t.Errorf("got %d attempts, want 1 (410 is final)", got.AttemptCount)
		}
		wh := e.webhookRow(t, w.ID)
		if wh.IsActive || wh.DisabledReason == nil || *wh.DisabledReason != "receiver answered 410 Gone" {
			t.Errorf("got active %v reason %v, want disabled for 410 Gone", wh.IsActive, wh.DisabledReason)
		}
		waitFor(t, func() bool { return len(dis.of(w.ID)) > 0 }, "WebhookDisabled")
		if got := dis.of(w.ID); len(got) != 1 || got[0] != "receiver answered 410 Gone" {
			t.Errorf("got WebhookDisabled reasons %q, want one 410 reason", got)
		}

		// A later delivery waits.
		later := e.deliver(t, w, e.event(t, "user.created", userPayload))
		time.Sleep(200 * time.Millisecond) // a few polls
		if d := e.reload(t, later.ID); d.Status != delivery.StatusPENDING || d.AttemptCount != 0 || rc.count() != 1 {
			t.Errorf("got %s after %d attempts and %d requests, want PENDING, 0, 1", d.Status, d.AttemptCount, rc.count())
		}
	})
}

func TestRedirectNotFollowed(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if r.URL.Path == "/hook" {
			http.Redirect(w, r, "/moved", http.StatusMovedPermanently)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	w, _ := e.webhook(t, rc.URL+"/hook")
	del := e.deliver(t, w, e.event(t, "user.created", userPayload))
	cfg := testConfig()
	cfg.Schedule = []time.Duration{}
	e.start(t, cfg, Hooks{})

	e.waitStatus(t, del.ID, delivery.StatusFAILED)
	if reqs := rc.requests(); len(reqs) != 1 || reqs[0].path != "/hook" {
		t.Fatalf("got %d requests, want only the one to /hook", len(reqs))
	}
	a := e.attempts(t, del.ID)[0]
	if a.ErrorCode == nil || *a.ErrorCode != deliveryattempt.ErrorCodeREDIRECT || a.ResponseStatus == nil || *a.ResponseStatus != 301 {
		t.Errorf("got code %v status %v, want REDIRECT 301", a.ErrorCode, a.ResponseStatus)
	}
}

func TestHangingReceiverTimesOut(t *testing.T) {
	e := newEnv(t)
	rc, _ := heldReceiver(t)
	w, _ := e.webhook(t, rc.URL, func(c *ent.WebhookCreate) { c.SetTimeoutSeconds(1) })
	del := e.deliver(t, w, e.event(t, "user.created", userPayload))
	cfg := testConfig()
	cfg.Schedule = []time.Duration{}
	e.start(t, cfg, Hooks{})

	e.waitStatus(t, del.ID, delivery.StatusFAILED)
	a := e.attempts(t, del.ID)[0]
	if a.ErrorCode == nil || *a.ErrorCode != deliveryattempt.ErrorCodeTIMEOUT || a.ResponseStatus != nil {
		t.Errorf("got code %v status %v, want TIMEOUT and no status", a.ErrorCode, a.ResponseStatus)
	}
	if a.DurationMs < 900 {
		t.Errorf("got duration %d ms, want about the 1 s timeout", a.DurationMs)
	}
}

func TestDisableAfterConsecutiveFailedDeliveries(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		rc := newReceiver(t, status(http.StatusInternalServerError))
		w, _ := e.webhook(t, rc.URL)
		ids := e.userCreatedDeliveries(t, w, 5)
		cfg := testConfig()
		cfg.Schedule = []time.Duration{} // one attempt each
		cfg.PerWebhookInFlight = 1
		var dis disablings
		e.start(t, cfg, Hooks{WebhookDisabled: dis.hook})

		for _, id := range ids {
			e.waitStatus(t, id, delivery.StatusFAILED)
		}
		waitFor(t, func() bool { return len(dis.of(w.ID)) > 0 }, "WebhookDisabled")
		if got := dis.of(w.ID); len(got) != 1 || got[0] != "5 deliveries in a row failed" {
			t.Errorf("got WebhookDisabled reasons %q, want one %q", got, "5 deliveries in a row failed")
		}
		wh := e.webhookRow(t, w.ID)
		if wh.IsActive || wh.FailureCount != 5 || wh.ConsecutiveFailures != 5 {
			t.Errorf("got active %v failures %d in a row %d, want false 5 5", wh.IsActive, wh.FailureCount, wh.ConsecutiveFailures)
		}
	})
}

func TestDisableAfterFailingPeriod(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		rc := newReceiver(t, status(http.StatusInternalServerError))
		w, _ := e.webhook(t, rc.URL, func(c *ent.WebhookCreate) {
			c.SetConsecutiveFailures(1).SetFirstFailureAt(time.Now().UTC().Add(-6 * 24 * time.Hour))
		})
		del := e.deliver(t, w, e.event(t, "user.created", userPayload))
		cfg := testConfig()
		cfg.Schedule = []time.Duration{time.Hour}
		var dis disablings
		e.start(t, cfg, Hooks{WebhookDisabled: dis.hook})

		waitFor(t, func() bool { return len(dis.of(w.ID)) > 0 }, "WebhookDisabled")
		if got := dis.of(w.ID); len(got) != 1 || got[0] != "every attempt failed for 5 days" {
			t.Errorf("got reasons %q, want one %q", got, "every attempt failed for 5 days")
		}
		// The delivery itself still has retries left; it waits for the webhook to come back.
		if d := e.reload(t, del.ID); d.Status != delivery.StatusPENDING || d.AttemptCount != 1 {
			t.Errorf("got %s after %d attempts, want PENDING after 1", d.Status, d.AttemptCount)
		}
	})
}

func TestDisabledWebhookWaitsAndResumes(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		rc := newReceiver(t, status(http.StatusOK))
		w, _ := e.webhook(t, rc.URL, func(c *ent.WebhookCreate) { c.SetIsActive(false).SetDisabledReason("test") })
		del := e.deliver(t, w, e.event(t, "user.created", userPayload))
		d := e.start(t, testConfig(), Hooks{})

		time.Sleep(200 * time.Millisecond) // several polls
		if got := e.reload(t, del.ID); got.Status != delivery.StatusPENDING || got.ClaimedBy != nil || rc.count() != 0 {
			t.Fatalf("got %s claimed by %v with %d requests, want PENDING, unclaimed, none", got.Status, got.ClaimedBy, rc.count())
		}
		if err := e.client.Webhook.UpdateOneID(w.ID).SetIsActive(true).ClearDisabledReason().Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
		d.Wake()
		e.waitStatus(t, del.ID, delivery.StatusSUCCESS)
	})
}

func TestPerWebhookLimitAndNoStarvation(t *testing.T) {
	e := newEnv(t)
	const limit = 2
	var cur, peak atomic.Int32
	release := make(chan struct{})
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		n := cur.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		cur.Add(-1)
		w.WriteHeader(http.StatusOK)
	})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open)
	fast := newReceiver(t, status(http.StatusOK))
	slowHook, _ := e.webhook(t, slow.URL)
	fastHook, _ := e.webhook(t, fast.URL)
	var slowIDs, fastIDs []int
	for range 12 {
		slowIDs = append(slowIDs, e.deliver(t, slowHook, e.event(t, "user.created", userPayload)).ID)
	}
	for range 12 {
		fastIDs = append(fastIDs, e.deliver(t, fastHook, e.event(t, "user.created", userPayload)).ID)
	}
	cfg := testConfig()
	cfg.Workers = 8
	cfg.PerWebhookInFlight = limit
	e.start(t, cfg, Hooks{})

	// The fast webhook is served while the slow one holds its requests.
	for _, id := range fastIDs {
		e.waitStatus(t, id, delivery.StatusSUCCESS)
	}
	waitFor(t, func() bool { return slow.count() == limit }, "%d requests at the slow receiver", limit)
	time.Sleep(100 * time.Millisecond)
	if n := slow.count(); n != limit {
		t.Fatalf("got %d requests at the blocked receiver, want %d (the limit)", n, limit)
	}
	open()
	for _, id := range slowIDs {
		e.waitStatus(t, id, delivery.StatusSUCCESS)
	}
	if p := peak.Load(); p > limit {
		t.Errorf("got %d concurrent requests at one webhook, want at most %d", p, limit)
	}
}

func TestRateLimitSpacesRequests(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, status(http.StatusOK))
	w, _ := e.webhook(t, rc.URL, func(c *ent.WebhookCreate) { c.SetRateLimitPerSecond(20) })
	ids := e.userCreatedDeliveries(t, w, 5)
	e.start(t, testConfig(), Hooks{})
	for _, id := range ids {
		e.waitStatus(t, id, delivery.StatusSUCCESS)
	}
	reqs := rc.requests()
	// Five requests at 20/s span at least four intervals of 50 ms (less a little for jitter
	// in arrival); a limiter that failed instead of waiting would leave deliveries unfinished.
	if span := reqs[len(reqs)-1].at.Sub(reqs[0].at); span < 160*time.Millisecond {
		t.Errorf("got 5 requests within %v, want them spread over at least 200ms at 20/s", span)
	}
}

func TestAttemptRecordsTruncatedBodyAndRedactedHeaders(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Add("X-Reply", "first")
		w.Header().Add("X-Reply", "second")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(strings.Repeat("x", 100<<10)))
	})
	w, _ := e.webhook(t, rc.URL, e.withHeaders(t, map[string]string{"X-Api-Key": "key-value"}))
	del := e.deliver(t, w, e.event(t, "user.created", userPayload))
	e.start(t, testConfig(), Hooks{})
	e.waitStatus(t, del.ID, delivery.StatusSUCCESS)

	a := e.attempts(t, del.ID)[0]
	if a.ResponseBody == nil || len(*a.ResponseBody) != 64<<10 {
		t.Errorf("got a response body of %d bytes, want %d", lenOf(a.ResponseBody), 64<<10)
	}
	if got := a.ResponseHeaders["X-Reply"]; got != "first" {
		t.Errorf("got response header X-Reply %q, want the first value", got)
	}
	if got := a.RequestHeaders["X-Api-Key"]; got != redacted {
		t.Errorf("got recorded X-Api-Key %q, want %q", got, redacted)
	}
	if rc.requests()[0].header.Get("X-Api-Key") != "key-value" {
		t.Errorf("receiver did not get the custom header")
	}
}

func lenOf(s *string) int {
	if s == nil {
		return -1
	}
	return len(*s)
}

func TestBlockedTarget(t *testing.T) {
	e := newEnv(t)
	e.guard = netguard.New(nil, nil) // loopback refused
	rc := newReceiver(t, status(http.StatusOK))
	w, _ := e.webhook(t, rc.URL)
	del := e.deliver(t, w, e.event(t, "user.created", userPayload))
	cfg := testConfig()
	cfg.Schedule = []time.Duration{}
	e.start(t, cfg, Hooks{})

	e.waitStatus(t, del.ID, delivery.StatusFAILED)
	a := e.attempts(t, del.ID)[0]
	if a.ErrorCode == nil || *a.ErrorCode != deliveryattempt.ErrorCodeBLOCKED_TARGET {
		t.Errorf("got error code %v, want BLOCKED_TARGET", a.ErrorCode)
	}
	if rc.count() != 0 {
		t.Errorf("got %d requests at a blocked target, want 0", rc.count())
	}
}

func TestLeaseTakeover(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		rc := newReceiver(t, status(http.StatusOK))
		w, _ := e.webhook(t, rc.URL)
		ctx := context.Background()
		dead := e.deliver(t, w, e.event(t, "user.created", userPayload))
		alive := e.deliver(t, w, e.event(t, "user.created", userPayload))
		now := time.Now().UTC()
		if err := e.client.Delivery.UpdateOneID(dead.ID).SetClaimedBy("crashed").SetClaimedUntil(now.Add(-time.Second)).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.client.Delivery.UpdateOneID(alive.ID).SetClaimedBy("running").SetClaimedUntil(now.Add(time.Hour)).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		e.start(t, testConfig(), Hooks{})

		e.waitStatus(t, dead.ID, delivery.StatusSUCCESS)
		time.Sleep(150 * time.Millisecond) // a few polls
		if got := e.reload(t, alive.ID); got.Status != delivery.StatusPENDING || got.ClaimedBy == nil || *got.ClaimedBy != "running" {
			t.Errorf("got %s claimed by %v, want PENDING still claimed by the live instance", got.Status, got.ClaimedBy)
		}
		if rc.count() != 1 {
			t.Errorf("got %d requests, want 1", rc.count())
		}
	})
}

func TestStopReleasesClaims(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		rc, _ := heldReceiver(t)
		w, _ := e.webhook(t, rc.URL)
		ids := e.userCreatedDeliveries(t, w, 2) // one in flight, one claimed and waiting (the limit for a new webhook)
		cfg := testConfig()
		cfg.PerWebhookInFlight = 1
		cfg.ShutdownTimeout = 100 * time.Millisecond
		d := e.newDispatcher(cfg, Hooks{})
		d.Start(context.Background())
		waitFor(t, func() bool { return rc.count() == 1 }, "the first request")
		waitFor(t, func() bool {
			n, err := e.client.Delivery.Query().Where(delivery.ClaimedByNotNil()).Count(context.Background())
			return err == nil && n == 2
		}, "both claimed")

		if err := d.Stop(context.Background()); err != nil {
			t.Fatalf("stop: %v", err)
		}
		for _, id := range ids {
			got := e.reload(t, id)
			if got.Status != delivery.StatusPENDING || got.ClaimedBy != nil || got.ClaimedUntil != nil || got.AttemptCount != 0 {
				t.Errorf("delivery %d: got %s claimed by %v until %v after %d attempts, want PENDING, unclaimed, 0",
					id, got.Status, got.ClaimedBy, got.ClaimedUntil, got.AttemptCount)
			}
		}
		if n := e.client.DeliveryAttempt.Query().CountX(context.Background()); n != 0 {
			t.Errorf("got %d attempts recorded for aborted requests, want 0", n)
		}
		if err := d.Stop(context.Background()); err != nil {
			t.Errorf("second stop: %v", err)
		}
	})
}

func TestStopLetsRequestsInFlightFinish(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		time.Sleep(200 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	w, _ := e.webhook(t, rc.URL)
	del := e.deliver(t, w, e.event(t, "user.created", userPayload))
	cfg := testConfig()
	cfg.ShutdownTimeout = 10 * time.Second
	d := e.newDispatcher(cfg, Hooks{})
	d.Start(context.Background())
	waitFor(t, func() bool { return rc.count() == 1 }, "the request")
	if err := d.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if got := e.reload(t, del.ID); got.Status != delivery.StatusSUCCESS {
		t.Errorf("got %s, want SUCCESS recorded before Stop returned", got.Status)
	}
}

func TestWebhookDeletedWhileInFlight(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		rc, open := heldReceiver(t)
		w, _ := e.webhook(t, rc.URL)
		e.deliver(t, w, e.event(t, "user.created", userPayload))
		var ch changes
		d := e.start(t, testConfig(), Hooks{DeliveryChanged: ch.hook})
		waitFor(t, func() bool { return rc.count() == 1 }, "the request")

		if err := e.client.Webhook.DeleteOneID(w.ID).Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
		open()

		// The dispatcher carries on: another webhook's delivery goes through.
		other := newReceiver(t, status(http.StatusOK))
		w2, _ := e.webhook(t, other.URL)
		del2 := e.deliver(t, w2, e.event(t, "user.created", userPayload))
		d.Wake()
		e.waitStatus(t, del2.ID, delivery.StatusSUCCESS)
		if n := e.client.DeliveryAttempt.Query().CountX(context.Background()); n != 1 {
			t.Errorf("got %d attempts, want only the other webhook's", n)
		}
		for _, c := range ch.list() {
			if c.WebhookID == w.ID {
				t.Errorf("got DeliveryChanged for a deleted delivery %d", c.ID)
			}
		}
	})
}

func TestOutcomeNotRecordedAfterTakeover(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		rc, release := heldReceiver(t)
		w, _ := e.webhook(t, rc.URL)
		del := e.deliver(t, w, e.event(t, "user.created", userPayload))
		d := e.newDispatcher(testConfig(), Hooks{})
		d.Start(context.Background())
		waitFor(t, func() bool { return rc.count() == 1 }, "the request")

		// Another instance took the delivery over (as if our lease had expired).
		until := time.Now().UTC().Add(time.Hour)
		if err := e.client.Delivery.UpdateOneID(del.ID).SetClaimedBy("other").SetClaimedUntil(until).Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
		release()
		if err := d.Stop(context.Background()); err != nil {
			t.Fatalf("stop: %v", err)
		}
		got := e.reload(t, del.ID)
		if got.Status != delivery.StatusPENDING || got.AttemptCount != 0 || got.ClaimedBy == nil || *got.ClaimedBy != "other" {
			t.Errorf("got %s after %d attempts claimed by %v, want the other instance's PENDING claim untouched", got.Status, got.AttemptCount, got.ClaimedBy)
		}
		if n := e.client.DeliveryAttempt.Query().CountX(context.Background()); n != 0 {
			t.Errorf("got %d attempts, want none recorded by the instance that lost the claim", n)
		}
	})
}

func TestTwoInstancesDeliverEachOnceWithRenewedLeases(t *testing.T) {
	eachDB(t, func(t *testing.T, e *testEnv) {
		var mu sync.Mutex
		seen := map[string]int{}
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
			mu.Lock()
			seen[r.Header.Get("webhook-id")]++
			mu.Unlock()
			// Longer than the lease: waiting deliveries stay claimed only through renewals.
			time.Sleep(400 * time.Millisecond)
			w.WriteHeader(http.StatusOK)
		})
		w, _ := e.webhook(t, rc.URL)
		ids := e.userCreatedDeliveries(t, w, 16)
		for _, name := range []string{"instance-a", "instance-b"} {
			cfg := testConfig()
			cfg.InstanceID = name
			cfg.Lease = 300 * time.Millisecond
			e.start(t, cfg, Hooks{})
		}
		for _, id := range ids {
			if d := e.waitStatus(t, id, delivery.StatusSUCCESS); d.AttemptCount != 1 {
				t.Errorf("delivery %d: got %d attempts, want 1", id, d.AttemptCount)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != len(ids) {
			t.Errorf("got %d distinct events at the receiver, want %d", len(seen), len(ids))
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("event %s: got %d requests, want 1", id, n)
			}
		}
	})
}

// deliveryDiff names the fields in which two deliveries differ ("" when none do).
func deliveryDiff(got, want *ent.Delivery) string {
	var diffs []string
	check := func(name string, same bool, g, w any) {
		if !same {
			diffs = append(diffs, fmt.Sprintf("%s %v, stored %v", name, g, w))
		}
	}
	sameTime := func(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }
	check("webhook_id", got.WebhookID == want.WebhookID, got.WebhookID, want.WebhookID)
	check("event_id", got.EventID == want.EventID, got.EventID, want.EventID)
	check("event_type", got.EventType == want.EventType, got.EventType, want.EventType)
	check("status", got.Status == want.Status, got.Status, want.Status)
	check("attempt_count", got.AttemptCount == want.AttemptCount, got.AttemptCount, want.AttemptCount)
	check("next_attempt_at", sameTime(got.NextAttemptAt, want.NextAttemptAt), got.NextAttemptAt, want.NextAttemptAt)
	check("response_status", fmt.Sprint(deref(got.ResponseStatus)) == fmt.Sprint(deref(want.ResponseStatus)), deref(got.ResponseStatus), deref(want.ResponseStatus))
	check("error_message", fmt.Sprint(deref(got.ErrorMessage)) == fmt.Sprint(deref(want.ErrorMessage)), deref(got.ErrorMessage), deref(want.ErrorMessage))
	check("created_at", got.CreatedAt.Equal(want.CreatedAt), got.CreatedAt, want.CreatedAt)
	check("delivered_at", sameTime(got.DeliveredAt, want.DeliveredAt), got.DeliveredAt, want.DeliveredAt)
	check("claimed_until", sameTime(got.ClaimedUntil, want.ClaimedUntil), got.ClaimedUntil, want.ClaimedUntil)
	check("claimed_by", fmt.Sprint(deref(got.ClaimedBy)) == fmt.Sprint(deref(want.ClaimedBy)), deref(got.ClaimedBy), deref(want.ClaimedBy))
	return strings.Join(diffs, "; ")
}

// deref is *p, or nil for a nil p.
func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestOneInFlightSendsInDueOrder checks that a webhook taking one request at a time gets its
// due deliveries in due order: its lane's worker takes claimed jobs first in, first out.
func TestOneInFlightSendsInDueOrder(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, status(http.StatusOK))
	w, _ := e.webhook(t, rc.URL)
	ids := e.userCreatedDeliveries(t, w, 40)
	cfg := testConfig()
	cfg.PerWebhookInFlight = 1
	e.start(t, cfg, Hooks{})
	for _, id := range ids {
		e.waitStatus(t, id, delivery.StatusSUCCESS)
	}
	var got []int
	for _, r := range rc.requests() {
		id, err := strconv.Atoi(r.header.Get("X-Webhook-Delivery"))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("deliveries sent in the order %v, want %v", got, ids)
	}
}
