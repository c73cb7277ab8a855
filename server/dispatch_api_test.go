package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/eventgate/eventgate/server/servertest"
)

// hookRequest is one request a hookReceiver got.
type hookRequest struct {
	header http.Header
	body   []byte
}

// hookReceiver is a real webhook endpoint: it records every request, then answers what respond
// says (200 when respond is nil).
type hookReceiver struct {
	URL string
	mu  sync.Mutex
	got []hookRequest
}

func newHookReceiver(t *testing.T, respond func(hookRequest) int) *hookReceiver {
	t.Helper()
	h := &hookReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := hookRequest{header: r.Header.Clone(), body: body}
		h.mu.Lock()
		h.got = append(h.got, req)
		h.mu.Unlock()
		status := http.StatusOK
		if respond != nil {
			status = respond(req)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, http.StatusText(status))
	}))
	t.Cleanup(srv.Close)
	h.URL = srv.URL + "/hook"
	return h
}

// requests returns the requests received so far for a webhook ("" for all), in arrival order.
func (h *hookReceiver) requests(webhookID string) []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookRequest
	for _, r := range h.got {
		if webhookID == "" || r.header.Get("X-Webhook-Id") == webhookID {
			out = append(out, r)
		}
	}
	return out
}

// verifyRequest checks a request as a receiver does: the Standard Webhooks signature with the
// official library (raw-secret mode for a secret without the whsec_ prefix), then the legacy
// X-Webhook-Signature (HMAC-SHA256 of the body keyed with the whole secret string).
func verifyRequest(secret string, r hookRequest) error {
	var (
		wh  *standardwebhooks.Webhook
		err error
	)
	if strings.HasPrefix(secret, "whsec_") {
		wh, err = standardwebhooks.NewWebhook(secret)
	} else {
		wh, err = standardwebhooks.NewWebhookRaw([]byte(secret))
	}
	if err != nil {
		return err
	}
	if err := wh.Verify(r.body, r.header); err != nil {
		return fmt.Errorf("standard webhooks: %w", err)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(r.body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := r.header.Get("X-Webhook-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
		return fmt.Errorf("legacy signature: got %q, want %q", got, want)
	}
	return nil
}

// createHook creates a webhook (webhookInput defaults with overrides) and returns its id and secret.
func createHook(t *testing.T, eg *servertest.Instance, overrides map[string]any) (id, secret string) {
	t.Helper()
	var out struct {
		CreateWebhook struct {
			Secret  string
			Webhook struct{ ID string }
		}
	}
	eg.MustGraphQL(servertest.AdminToken, createWebhook, webhookInput(overrides), &out)
	return out.CreateWebhook.Webhook.ID, out.CreateWebhook.Secret
}

// publishOne publishes one event and returns its id.
func publishOne(t *testing.T, eg *servertest.Instance, input map[string]any) string {
	t.Helper()
	var out struct{ PublishEvent struct{ ID string } }
	eg.MustGraphQL(servertest.AdminToken, publishEvent, map[string]any{"input": input}, &out)
	return out.PublishEvent.ID
}

const deliveryFields = `id status attemptCount nextAttemptAt responseStatus errorMessage deliveredAt eventType
  event { id } webhook { id }
  attempts { number responseStatus errorCode errorMessage requestHeaders durationMs }`

type apiAttempt struct {
	Number         int
	ResponseStatus *int
	ErrorCode      *string
	ErrorMessage   *string
	RequestHeaders map[string]any
	DurationMs     int
}

type apiDelivery struct {
	ID, Status, EventType string
	AttemptCount          int
	NextAttemptAt         *string
	ResponseStatus        *int
	ErrorMessage          *string
	DeliveredAt           *string
	Event, Webhook        struct{ ID string }
	Attempts              []apiAttempt
}

func (d apiDelivery) String() string {
	nums := make([]string, len(d.Attempts))
	for i, a := range d.Attempts {
		code := "-"
		if a.ErrorCode != nil {
			code = *a.ErrorCode
		}
		nums[i] = fmt.Sprintf("#%d:%s", a.Number, code)
	}
	return fmt.Sprintf("delivery %s %s attempts=%d %v", d.ID, d.Status, d.AttemptCount, nums)
}

// hookDeliveries lists a webhook's deliveries, oldest first.
func hookDeliveries(t *testing.T, eg *servertest.Instance, webhookID string) []apiDelivery {
	t.Helper()
	var out struct {
		Deliveries struct{ Items []apiDelivery }
	}
	eg.MustGraphQL(servertest.AdminToken, `query($w: ID) { deliveries(webhookId: $w, limit: 200) { items { `+deliveryFields+` } } }`,
		map[string]any{"w": webhookID}, &out)
	items := out.Deliveries.Items
	slices.SortFunc(items, func(a, b apiDelivery) int { return atoi(a.ID) - atoi(b.ID) })
	return items
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// waitUntil polls cond until it reports done, failing with the last state it described.
func waitUntil(t *testing.T, what string, cond func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		done, state := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last state: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDeliveries waits until a webhook has n deliveries, all with status, and returns them.
func waitDeliveries(t *testing.T, eg *servertest.Instance, webhookID string, n int, status string) []apiDelivery {
	t.Helper()
	var got []apiDelivery
	waitUntil(t, fmt.Sprintf("%d %s deliveries of webhook %s", n, status, webhookID), func() (bool, string) {
		got = hookDeliveries(t, eg, webhookID)
		if len(got) != n {
			return false, fmt.Sprint(got)
		}
		for _, d := range got {
			if d.Status != status {
				return false, fmt.Sprint(got)
			}
		}
		return true, ""
	})
	return got
}

type apiWebhook struct {
	ID                         string
	IsActive                   bool
	DisabledReason             *string
	SuccessCount, FailureCount int64
	LastTriggeredAt            *string
}

func getHook(t *testing.T, eg *servertest.Instance, id string) apiWebhook {
	t.Helper()
	var out struct{ Webhook *apiWebhook }
	eg.MustGraphQL(servertest.AdminToken, `query($id: ID!) { webhook(id: $id) { id isActive disabledReason successCount failureCount lastTriggeredAt } }`,
		map[string]any{"id": id}, &out)
	if out.Webhook == nil {
		t.Fatalf("webhook %s not found", id)
	}
	return *out.Webhook
}

// headerOf returns a recorded request header by case-insensitive name.
func headerOf(headers map[string]any, name string) (string, bool) {
	for k, v := range headers {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s, true
		}
	}
	return "", false
}

// TestWebhookRequestsVerify: an event reaches a STANDARD webhook with a generated secret and a
// LEGACY one with a raw (old-system) secret; each request verifies with the official Standard
// Webhooks library and the legacy header, carries its body format and custom headers, and the
// API shows a SUCCESS delivery with its attempt recorded without secrets.
func TestWebhookRequestsVerify(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		rc := newHookReceiver(t, nil)
		const rawSecret = "legacy-secret-of-the-old-bot"
		std, stdSecret := createHook(t, eg, map[string]any{"name": "std", "url": rc.URL,
			"customHeaders": map[string]any{"X-Tenant": "acme-secret-value"}})
		legacy, _ := createHook(t, eg, map[string]any{"name": "legacy", "url": rc.URL, "secret": rawSecret,
			"payloadFormat": "LEGACY", "eventTypes": []string{"payment.completed", "user.created"}})
		secrets := map[string]string{std: stdSecret, legacy: rawSecret}

		payload := map[string]any{"transaction_id": 42, "user_id": 7, "amount_kopeks": 50000, "future_key": "kept"}
		publishOne(t, eg, map[string]any{"type": "payment.completed", "id": "pay-42", "occurredAt": "2026-11-27T06:00:00Z", "payload": payload})

		deliveries := map[string]apiDelivery{}
		for _, id := range []string{std, legacy} {
			ds := waitDeliveries(t, eg, id, 1, "SUCCESS")
			deliveries[id] = ds[0]
		}
		wantPayload, _ := json.Marshal(payload)
		for _, id := range []string{std, legacy} {
			reqs := rc.requests(id)
			if len(reqs) != 1 {
				t.Fatalf("webhook %s: got %d requests, want 1", id, len(reqs))
			}
			r, d := reqs[0], deliveries[id]
			if err := verifyRequest(secrets[id], r); err != nil {
				t.Errorf("webhook %s: %v", id, err)
			}
			if err := verifyRequest("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", r); err == nil {
				t.Errorf("webhook %s: a request verifies with another secret", id)
			}
			for name, want := range map[string]string{
				"webhook-id": "pay-42", "X-Webhook-Event": "payment.completed", "X-Webhook-Id": id,
				"X-Webhook-Delivery": d.ID, "X-Webhook-Attempt": "1", "Content-Type": "application/json",
			} {
				if got := r.header.Get(name); got != want {
					t.Errorf("webhook %s: got %s %q, want %q", id, name, got, want)
				}
			}
			if ua := r.header.Get("User-Agent"); !strings.HasPrefix(ua, "eventgate/") {
				t.Errorf("got User-Agent %q, want eventgate/<version>", ua)
			}

			var body map[string]json.RawMessage
			if err := json.Unmarshal(r.body, &body); err != nil {
				t.Fatalf("body %s: %v", r.body, err)
			}
			data := r.body
			if id == std {
				if string(body["type"]) != `"payment.completed"` || string(body["timestamp"]) != `"2026-11-27T06:00:00Z"` {
					t.Errorf("STANDARD body: got %s, want type and occurredAt around the payload", r.body)
				}
				data = body["data"]
			}
			if !jsonEqual(t, data, wantPayload) {
				t.Errorf("webhook %s: got payload %s, want %s (unknown keys kept)", id, data, wantPayload)
			}

			if d.AttemptCount != 1 || d.ResponseStatus == nil || *d.ResponseStatus != 200 || d.DeliveredAt == nil ||
				d.NextAttemptAt != nil || d.ErrorMessage != nil || d.Event.ID != "pay-42" || len(d.Attempts) != 1 {
				t.Fatalf("got %+v, want one successful attempt", d)
			}
			a := d.Attempts[0]
			if a.Number != 1 || a.ResponseStatus == nil || *a.ResponseStatus != 200 || a.ErrorCode != nil {
				t.Errorf("got attempt %+v, want number 1 answered 200", a)
			}
			if got, _ := headerOf(a.RequestHeaders, "webhook-id"); got != "pay-42" {
				t.Errorf("recorded webhook-id %q, want pay-42 (non-secret headers stay readable)", got)
			}
			for _, name := range []string{"webhook-signature", "X-Webhook-Signature"} {
				got, ok := headerOf(a.RequestHeaders, name)
				if !ok || got == "" || got == r.header.Get(name) {
					t.Errorf("recorded %s = %q, want it present and redacted", name, got)
				}
			}
			w := getHook(t, eg, id)
			if w.SuccessCount != 1 || w.FailureCount != 0 || w.LastTriggeredAt == nil {
				t.Errorf("got webhook %+v, want successCount 1, failureCount 0, lastTriggeredAt set", w)
			}
		}

		if got := rc.requests(std)[0].header.Get("X-Tenant"); got != "acme-secret-value" {
			t.Errorf("custom header: got %q, want acme-secret-value", got)
		}
		if got := rc.requests(legacy)[0].header.Get("X-Tenant"); got != "" {
			t.Errorf("the legacy webhook got the other webhook's custom header %q", got)
		}
		if _, ok := headerOf(deliveries[std].Attempts[0].RequestHeaders, "X-Tenant"); !ok {
			t.Errorf("recorded headers %v lack the custom header's name", deliveries[std].Attempts[0].RequestHeaders)
		}
		// Nothing an API client can read holds a signature or a custom header value.
		r := eg.GraphQL(servertest.AdminToken, `{ deliveries { items { `+deliveryFields+` } } }`, nil)
		hidden := []string{"acme-secret-value"}
		for _, id := range []string{std, legacy} {
			req := rc.requests(id)[0]
			hidden = append(hidden, req.header.Get("webhook-signature"), req.header.Get("X-Webhook-Signature"))
		}
		for _, secret := range hidden {
			if bytes.Contains(r.Body, []byte(secret)) {
				t.Errorf("deliveries reveal %q", secret)
			}
		}
	})
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// TestTestWebhookAndRedeliver: testWebhook sends a webhook.test event to that webhook only, and
// redeliver sends the same event again as a new delivery with the same webhook-id.
func TestTestWebhookAndRedeliver(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		rc := newHookReceiver(t, nil)
		target, secret := createHook(t, eg, map[string]any{"name": "target", "url": rc.URL})
		other, _ := createHook(t, eg, map[string]any{"name": "other", "url": rc.URL, "eventTypes": []string{"payment.completed", "user.created"}})

		var tested struct {
			TestWebhook struct {
				ID, EventType, Status string
				Webhook               struct{ ID string }
				Event                 struct{ ID, Type string }
			}
		}
		eg.MustGraphQL(servertest.AdminToken, `mutation($id: ID!) { testWebhook(id: $id) { id eventType status webhook { id } event { id type } } }`,
			map[string]any{"id": target}, &tested)
		td := tested.TestWebhook
		if td.EventType != "webhook.test" || td.Event.Type != "webhook.test" || td.Webhook.ID != target || td.Status != "PENDING" {
			t.Fatalf("got %+v, want a PENDING webhook.test delivery to webhook %s", td, target)
		}
		first := waitDeliveries(t, eg, target, 1, "SUCCESS")[0]
		reqs := rc.requests("")
		if len(reqs) != 1 {
			t.Fatalf("got %d requests, want 1", len(reqs))
		}
		if err := verifyRequest(secret, reqs[0]); err != nil {
			t.Error(err)
		}
		var body struct {
			Type string
			Data struct {
				WebhookID string `json:"webhook_id"`
				Message   string
			}
		}
		if err := json.Unmarshal(reqs[0].body, &body); err != nil || body.Type != "webhook.test" || body.Data.WebhookID != target {
			t.Errorf("got body %s, want a webhook.test naming webhook %s", reqs[0].body, target)
		}
		if got := reqs[0].header.Get("webhook-id"); got != td.Event.ID {
			t.Errorf("got webhook-id %q, want the event id %q", got, td.Event.ID)
		}
		if ds := hookDeliveries(t, eg, other); len(ds) != 0 {
			t.Errorf("the other webhook got %v, want nothing", ds)
		}

		var re struct {
			Redeliver struct {
				ID    string
				Event struct{ ID string }
			}
		}
		eg.MustGraphQL(servertest.AdminToken, `mutation($id: ID!) { redeliver(deliveryId: $id) { id event { id } } }`, map[string]any{"id": first.ID}, &re)
		if re.Redeliver.ID == first.ID || re.Redeliver.Event.ID != td.Event.ID {
			t.Fatalf("got %+v, want a new delivery of event %s", re.Redeliver, td.Event.ID)
		}
		ds := waitDeliveries(t, eg, target, 2, "SUCCESS")
		if ds[1].ID != re.Redeliver.ID || ds[1].AttemptCount != 1 {
			t.Errorf("got %v, want the redelivery %s with one attempt", ds, re.Redeliver.ID)
		}
		reqs = rc.requests(target)
		if len(reqs) != 2 {
			t.Fatalf("got %d requests, want 2", len(reqs))
		}
		if reqs[1].header.Get("webhook-id") != reqs[0].header.Get("webhook-id") ||
			reqs[1].header.Get("X-Webhook-Delivery") != re.Redeliver.ID || reqs[1].header.Get("X-Webhook-Attempt") != "1" {
			t.Errorf("redelivery headers: webhook-id %q (first %q), delivery %q (want %s), attempt %q",
				reqs[1].header.Get("webhook-id"), reqs[0].header.Get("webhook-id"), reqs[1].header.Get("X-Webhook-Delivery"), re.Redeliver.ID,
				reqs[1].header.Get("X-Webhook-Attempt"))
		}
		if err := verifyRequest(secret, reqs[1]); err != nil {
			t.Error(err)
		}
		if r := eg.GraphQL(servertest.AdminToken, `mutation { redeliver(deliveryId: "999999") { id } }`, nil); r.Code() != "NOT_FOUND" {
			t.Errorf("redeliver of an unknown delivery: got %q, want NOT_FOUND: %s", r.Code(), r.Body)
		}
	})
}

// TestRetriesRetryFailedAndReplay: a receiver answering 500 gets len(schedule)+1 attempts, then
// the delivery is FAILED; retryFailedDeliveries sends it again with attempt numbering continued;
// replayEvents sends the webhook's past events again as new deliveries.
func TestRetriesRetryFailedAndReplay(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		schedule := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}
		eg := start(t, func(c *configT) { c.RetrySchedule = schedule })
		var status atomic.Int32
		status.Store(http.StatusInternalServerError)
		rc := newHookReceiver(t, func(hookRequest) int { return int(status.Load()) })
		hook, _ := createHook(t, eg, map[string]any{"url": rc.URL})
		since := time.Now().UTC().Add(-time.Minute)

		p := validPayloads["payment.completed"]
		pay1 := publishOne(t, eg, map[string]any{"type": "payment.completed", "payload": p})
		pay2 := publishOne(t, eg, map[string]any{"type": "payment.completed", "payload": p})
		publishOne(t, eg, map[string]any{"type": "user.created", "payload": validPayloads["user.created"]}) // not its type

		attempts := len(schedule) + 1
		for _, d := range waitDeliveries(t, eg, hook, 2, "FAILED") {
			if d.AttemptCount != attempts || len(d.Attempts) != attempts || d.NextAttemptAt != nil ||
				d.ResponseStatus == nil || *d.ResponseStatus != 500 || d.ErrorMessage == nil {
				t.Fatalf("got %v (%+v), want FAILED after %d attempts answered 500", d, d, attempts)
			}
			for i, a := range d.Attempts {
				if a.Number != i+1 || a.ResponseStatus == nil || *a.ResponseStatus != 500 || a.ErrorCode == nil || *a.ErrorCode != "HTTP_STATUS" {
					t.Errorf("attempt %d: got %+v, want number %d, 500, HTTP_STATUS", i, a, i+1)
				}
			}
		}
		assertAttemptHeaders(t, rc, map[string][]string{pay1: {"1", "2", "3"}, pay2: {"1", "2", "3"}})
		if w := getHook(t, eg, hook); w.FailureCount != 2 || w.SuccessCount != 0 || !w.IsActive {
			t.Errorf("got %+v, want failureCount 2, still active", w)
		}

		status.Store(http.StatusOK)
		var retried struct{ RetryFailedDeliveries int }
		eg.MustGraphQL(servertest.AdminToken, `mutation($w: ID!) { retryFailedDeliveries(webhookId: $w) }`, map[string]any{"w": hook}, &retried)
		if retried.RetryFailedDeliveries != 2 {
			t.Fatalf("retryFailedDeliveries: got %d, want 2", retried.RetryFailedDeliveries)
		}
		for _, d := range waitDeliveries(t, eg, hook, 2, "SUCCESS") {
			if d.AttemptCount != attempts+1 || d.Attempts[attempts].Number != attempts+1 || *d.Attempts[attempts].ResponseStatus != 200 {
				t.Errorf("got %v, want attempt %d answered 200", d, attempts+1)
			}
		}
		assertAttemptHeaders(t, rc, map[string][]string{pay1: {"1", "2", "3", "4"}, pay2: {"1", "2", "3", "4"}})
		eg.MustGraphQL(servertest.AdminToken, `mutation($w: ID!) { retryFailedDeliveries(webhookId: $w) }`, map[string]any{"w": hook}, &retried)
		if retried.RetryFailedDeliveries != 0 {
			t.Errorf("second retryFailedDeliveries: got %d, want 0", retried.RetryFailedDeliveries)
		}

		var replayed struct{ ReplayEvents int }
		eg.MustGraphQL(servertest.AdminToken, `mutation($w: ID!, $s: Time!) { replayEvents(webhookId: $w, since: $s) }`,
			map[string]any{"w": hook, "s": time.Now().UTC().Add(time.Hour).Format(time.RFC3339)}, &replayed)
		if replayed.ReplayEvents != 0 {
			t.Errorf("replayEvents from the future: got %d, want 0", replayed.ReplayEvents)
		}
		eg.MustGraphQL(servertest.AdminToken, `mutation($w: ID!, $s: Time!) { replayEvents(webhookId: $w, since: $s) }`,
			map[string]any{"w": hook, "s": since.Format(time.RFC3339Nano)}, &replayed)
		if replayed.ReplayEvents != 2 {
			t.Fatalf("replayEvents: got %d, want the 2 payment.completed events", replayed.ReplayEvents)
		}
		ds := waitDeliveries(t, eg, hook, 4, "SUCCESS")
		if ds[2].AttemptCount != 1 || ds[3].AttemptCount != 1 {
			t.Errorf("replayed deliveries: got %v, want one attempt each", ds[2:])
		}
		assertAttemptHeaders(t, rc, map[string][]string{pay1: {"1", "2", "3", "4", "1"}, pay2: {"1", "2", "3", "4", "1"}})
	})
}

// assertAttemptHeaders checks the X-Webhook-Attempt values each event id arrived with, in order.
func assertAttemptHeaders(t *testing.T, rc *hookReceiver, want map[string][]string) {
	t.Helper()
	got := map[string][]string{}
	for _, r := range rc.requests("") {
		id := r.header.Get("webhook-id")
		got[id] = append(got[id], r.header.Get("X-Webhook-Attempt"))
	}
	for id, w := range want {
		if !slices.Equal(got[id], w) {
			t.Errorf("event %s: got X-Webhook-Attempt %v, want %v", id, got[id], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got requests for %d events, want %d", len(got), len(want))
	}
}

// TestGoneDisablesWebhook: a 410 disables the webhook at once, publishes webhook.disabled (in the
// log and to a webhook subscribed to it), and stops new deliveries; re-enabling clears the reason.
func TestGoneDisablesWebhook(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		var status atomic.Int32
		status.Store(http.StatusGone)
		gone := newHookReceiver(t, func(hookRequest) int { return int(status.Load()) })
		watcher := newHookReceiver(t, nil)
		hook, _ := createHook(t, eg, map[string]any{"name": "gone", "url": gone.URL})
		watch, watchSecret := createHook(t, eg, map[string]any{"name": "watch", "url": watcher.URL, "eventTypes": []string{"webhook.disabled"}})

		p := validPayloads["payment.completed"]
		publishOne(t, eg, map[string]any{"type": "payment.completed", "payload": p})
		d := waitDeliveries(t, eg, hook, 1, "FAILED")[0]
		if d.AttemptCount != 1 || len(gone.requests("")) != 1 {
			t.Errorf("got %v and %d requests, want one attempt: 410 is not retried", d, len(gone.requests("")))
		}
		w := getHook(t, eg, hook)
		if w.IsActive || w.DisabledReason == nil || *w.DisabledReason == "" {
			t.Fatalf("got %+v, want disabled with a reason", w)
		}

		var log struct {
			Events struct {
				Edges []struct {
					Node struct {
						Type    string
						Payload struct {
							WebhookID string `json:"webhook_id"`
							Reason    string
						}
					}
				}
			}
		}
		eg.MustGraphQL(servertest.AdminToken, `{ events(types: ["webhook.disabled"]) { edges { node { type payload } } } }`, nil, &log)
		if len(log.Events.Edges) != 1 || log.Events.Edges[0].Node.Payload.WebhookID != hook || log.Events.Edges[0].Node.Payload.Reason == "" {
			t.Fatalf("got %+v, want one webhook.disabled event for webhook %s", log.Events.Edges, hook)
		}
		waitDeliveries(t, eg, watch, 1, "SUCCESS")
		reqs := watcher.requests(watch)
		if len(reqs) != 1 || reqs[0].header.Get("X-Webhook-Event") != "webhook.disabled" {
			t.Fatalf("watcher got %d requests, want one webhook.disabled", len(reqs))
		}
		if err := verifyRequest(watchSecret, reqs[0]); err != nil {
			t.Error(err)
		}
		var body struct {
			Data struct {
				WebhookID string `json:"webhook_id"`
				Reason    string
			}
		}
		if err := json.Unmarshal(reqs[0].body, &body); err != nil || body.Data.WebhookID != hook || body.Data.Reason != *w.DisabledReason {
			t.Errorf("got body %s, want webhook_id %s and reason %q", reqs[0].body, hook, *w.DisabledReason)
		}

		publishOne(t, eg, map[string]any{"type": "payment.completed", "payload": p})
		if ds := hookDeliveries(t, eg, hook); len(ds) != 1 {
			t.Errorf("a disabled webhook got a new delivery: %v", ds)
		}

		status.Store(http.StatusOK)
		var updated struct {
			UpdateWebhook struct {
				IsActive       bool
				DisabledReason *string
			}
		}
		eg.MustGraphQL(servertest.AdminToken, `mutation($id: ID!) { updateWebhook(id: $id, input: {isActive: true}) { isActive disabledReason } }`,
			map[string]any{"id": hook}, &updated)
		if !updated.UpdateWebhook.IsActive || updated.UpdateWebhook.DisabledReason != nil {
			t.Fatalf("got %+v, want active with no disabledReason", updated.UpdateWebhook)
		}
		publishOne(t, eg, map[string]any{"type": "payment.completed", "payload": p})
		waitUntil(t, "a delivery to the re-enabled webhook", func() (bool, string) {
			ds := hookDeliveries(t, eg, hook)
			return len(ds) == 2 && ds[1].Status == "SUCCESS", fmt.Sprint(ds)
		})
	})
}

// TestWebhookStatsArithmetic checks WebhookStats through the API: counts are deliveries, the
// success rate has two decimals and is 0 without finished deliveries, latencies come from attempts.
func TestWebhookStatsArithmetic(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, func(c *configT) { c.RetrySchedule = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond} })
		rc := newHookReceiver(t, func(r hookRequest) int {
			if r.header.Get("webhook-id") == "fail-me" {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		hook, _ := createHook(t, eg, map[string]any{"url": rc.URL, "eventTypes": []string{"user.created"}})
		idle, _ := createHook(t, eg, map[string]any{"name": "idle", "url": rc.URL})

		const statsFields = `totalWebhooks activeWebhooks totalDeliveries successfulDeliveries failedDeliveries pendingDeliveries successRate p50LatencyMs p99LatencyMs`
		type stats struct {
			TotalWebhooks, ActiveWebhooks, TotalDeliveries, SuccessfulDeliveries, FailedDeliveries, PendingDeliveries int
			SuccessRate                                                                                               float64
			P50LatencyMs, P99LatencyMs                                                                                *float64
		}
		global := func(since *time.Time) stats {
			var out struct{ WebhookStats stats }
			vars := map[string]any{}
			if since != nil {
				vars["s"] = since.Format(time.RFC3339Nano)
			}
			eg.MustGraphQL(servertest.AdminToken, `query($s: Time) { webhookStats(since: $s) { `+statsFields+` } }`, vars, &out)
			return out.WebhookStats
		}
		of := func(id string) stats {
			var out struct{ Webhook struct{ Stats stats } }
			eg.MustGraphQL(servertest.AdminToken, `query($id: ID!) { webhook(id: $id) { stats { `+statsFields+` } } }`, map[string]any{"id": id}, &out)
			return out.Webhook.Stats
		}

		empty := global(nil)
		if empty.TotalWebhooks != 2 || empty.ActiveWebhooks != 2 || empty.TotalDeliveries != 0 || empty.SuccessRate != 0 ||
			empty.P50LatencyMs != nil || empty.P99LatencyMs != nil {
			t.Fatalf("got %+v with no deliveries, want 2 webhooks, 0 deliveries, successRate 0, no latencies", empty)
		}
		for _, id := range []string{"ok-1", "ok-2", "fail-me"} {
			publishOne(t, eg, map[string]any{"type": "user.created", "id": id, "payload": validPayloads["user.created"]})
		}
		waitUntil(t, "2 SUCCESS and 1 FAILED", func() (bool, string) {
			s := of(hook)
			return s.SuccessfulDeliveries == 2 && s.FailedDeliveries == 1, fmt.Sprintf("%+v", s)
		})

		s := of(hook)
		if s.TotalWebhooks != 1 || s.ActiveWebhooks != 1 || s.TotalDeliveries != 3 || s.PendingDeliveries != 0 || s.SuccessRate != 66.67 {
			t.Errorf("webhook stats: got %+v, want 1 webhook, 3 deliveries (not 5 attempts), successRate 66.67", s)
		}
		if s.P50LatencyMs == nil || s.P99LatencyMs == nil || *s.P50LatencyMs < 0 || *s.P99LatencyMs < *s.P50LatencyMs {
			t.Errorf("got p50 %v p99 %v, want both, p99 ≥ p50", s.P50LatencyMs, s.P99LatencyMs)
		}
		if g := global(nil); g.TotalWebhooks != 2 || g.TotalDeliveries != 3 || g.SuccessfulDeliveries != 2 || g.FailedDeliveries != 1 || g.SuccessRate != 66.67 {
			t.Errorf("global stats: got %+v, want 2 webhooks, 3 deliveries, successRate 66.67", g)
		}
		if i := of(idle); i.TotalDeliveries != 0 || i.SuccessRate != 0 || i.P50LatencyMs != nil {
			t.Errorf("idle webhook stats: got %+v, want nothing and successRate 0", i)
		}
		later := time.Now().Add(time.Hour)
		if g := global(&later); g.TotalDeliveries != 0 || g.SuccessRate != 0 || g.TotalWebhooks != 2 {
			t.Errorf("stats since the future: got %+v, want no deliveries, successRate 0, still 2 webhooks", g)
		}
	})
}

// refusedTargets are the targets issue 4 lists; every one is refused without an allowlist.
var refusedTargets = []string{
	"http://127.0.0.1/", "http://localhost/", "http://10.0.0.1/", "http://172.16.0.1/",
	"http://192.168.1.1/", "http://169.254.169.254/", "http://100.64.0.1/", "http://0.0.0.0/",
	"http://[::1]/", "http://[fd00::1]/", "http://[::ffff:127.0.0.1]/", "http://[64:ff9b::7f00:1]/",
	"http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/",
}

// TestTargetGuardAtCreateTime: createWebhook and updateWebhook refuse every listed target with
// BAD_USER_INPUT on input.url when no allowlist is set, and admit them when it covers them.
func TestTargetGuardAtCreateTime(t *testing.T) {
	eg := servertest.Start(t, func(c *configT) { c.AllowedTargets = nil })
	for _, url := range refusedTargets {
		t.Run(url, func(t *testing.T) {
			r := eg.GraphQL(servertest.AdminToken, createWebhook, webhookInput(map[string]any{"url": url}))
			if r.Code() != "BAD_USER_INPUT" || r.Field() != "input.url" {
				t.Fatalf("got code %q field %q, want BAD_USER_INPUT input.url: %s", r.Code(), r.Field(), r.Body)
			}
		})
	}
	hook, _ := createHook(t, eg, map[string]any{"url": "http://203.0.113.10/hook"})
	r := eg.GraphQL(servertest.AdminToken, `mutation($id: ID!) { updateWebhook(id: $id, input: {url: "http://10.0.0.1/"}) { url } }`, map[string]any{"id": hook})
	if r.Code() != "BAD_USER_INPUT" || r.Field() != "input.url" {
		t.Errorf("updateWebhook to a private address: got code %q field %q, want BAD_USER_INPUT input.url", r.Code(), r.Field())
	}
	var count struct{ Webhooks struct{ Total int } }
	eg.MustGraphQL(servertest.AdminToken, `{ webhooks { total } }`, nil, &count)
	if count.Webhooks.Total != 1 {
		t.Errorf("got %d webhooks, want only the public one", count.Webhooks.Total)
	}

	allow := []string{"127.0.0.0/8", "10.0.0.0/8", "169.254.169.254/32", "100.64.0.0/10", "fc00::/7", "::1/128", "64:ff9b::/96"}
	open := servertest.Start(t, func(c *configT) {
		c.AllowedTargets = nil
		for _, p := range allow {
			c.AllowedTargets = append(c.AllowedTargets, netip.MustParsePrefix(p))
		}
	})
	for _, url := range []string{
		"http://127.0.0.1/", "http://localhost/", "http://10.0.0.1/", "http://169.254.169.254/", "http://100.64.0.1/",
		"http://[fd00::1]/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://[64:ff9b::7f00:1]/",
		"http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/",
	} {
		if r := open.GraphQL(servertest.AdminToken, createWebhook, webhookInput(map[string]any{"url": url})); len(r.Errors) > 0 {
			t.Errorf("%s with allowlist %v: got %s, want it accepted", url, allow, r.Body)
		}
	}
	// Outside the allowlist, also when spelled as a number (3232235777 is 192.168.1.1).
	for _, url := range []string{"http://192.168.1.1/", "http://3232235777/", "http://0xc0a80101/"} {
		if r := open.GraphQL(servertest.AdminToken, createWebhook, webhookInput(map[string]any{"url": url})); r.Code() != "BAD_USER_INPUT" {
			t.Errorf("%s with allowlist %v: got code %q, want BAD_USER_INPUT", url, allow, r.Code())
		}
	}
}

// TestTargetGuardAtDialTime: a webhook stored while the allowlist admitted its target is refused
// when the dispatcher dials it after a restart without the allowlist: BLOCKED_TARGET attempts,
// nothing reaches the receiver.
func TestTargetGuardAtDialTime(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		first := start(t, nil) // allows 127.0.0.0/8
		rc := newHookReceiver(t, nil)
		hook, _ := createHook(t, first, map[string]any{"url": rc.URL})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := first.App.Close(ctx); err != nil { // its dispatcher must not take the delivery
			t.Fatal(err)
		}

		eg := start(t, func(c *configT) {
			c.DataDir, c.DatabaseURL = first.Config.DataDir, first.Config.DatabaseURL
			c.AllowedTargets = nil
		})
		eg.MustGraphQL(servertest.AdminToken, `mutation($id: ID!) { testWebhook(id: $id) { id } }`, map[string]any{"id": hook}, nil)
		d := waitDeliveries(t, eg, hook, 1, "FAILED")[0]
		if len(d.Attempts) == 0 {
			t.Fatalf("got %v, want attempts", d)
		}
		for _, a := range d.Attempts {
			if a.ErrorCode == nil || *a.ErrorCode != "BLOCKED_TARGET" || a.ResponseStatus != nil || a.ErrorMessage == nil {
				t.Errorf("got attempt %+v, want BLOCKED_TARGET with a message and no response", a)
			}
		}
		if n := len(rc.requests("")); n != 0 {
			t.Errorf("got %d requests at a blocked target, want 0", n)
		}
	})
}

// TestDeliveryUpdatedSeesAttempts follows a delivery over deliveryUpdated from creation through
// two failed attempts to success.
func TestDeliveryUpdatedSeesAttempts(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, func(c *configT) { c.RetrySchedule = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond} })
		var n atomic.Int32
		rc := newHookReceiver(t, func(hookRequest) int {
			if n.Add(1) <= 2 {
				return http.StatusInternalServerError
			}
			return http.StatusOK
		})
		hook, _ := createHook(t, eg, map[string]any{"url": rc.URL})
		probe, _ := createHook(t, eg, map[string]any{"name": "probe", "url": rc.URL, "isActive": false})

		c := eg.Subscriber(servertest.AdminToken)
		c.Subscribe("d", `subscription { deliveryUpdated { id status attemptCount webhook { id } attempts { number responseStatus } } }`, nil)
		type update struct {
			ID, Status   string
			AttemptCount int
			Webhook      struct{ ID string }
			Attempts     []struct {
				Number         int
				ResponseStatus *int
			}
		}
		// One reader goroutine: a timed-out read would break the gorilla connection.
		msgs := make(chan servertest.WSMessage, 64)
		stop := make(chan struct{})
		t.Cleanup(func() { close(stop) }) // runs before the connection is closed
		go func() {
			for {
				m, err := c.TryRead(time.Minute)
				if err != nil {
					return
				}
				select {
				case msgs <- m:
				case <-stop:
					return
				}
			}
		}()
		read := func(timeout time.Duration) (update, bool) {
			t.Helper()
			timer := time.NewTimer(timeout)
			defer timer.Stop()
			for {
				var m servertest.WSMessage
				select {
				case m = <-msgs:
				case <-timer.C:
					return update{}, false
				}
				if m.Type == "ping" {
					c.Send(servertest.WSMessage{Type: "pong"})
					continue
				}
				var p struct {
					Data struct{ DeliveryUpdated update }
				}
				if m.Type != "next" || json.Unmarshal(m.Payload, &p) != nil {
					t.Fatalf("got %s %s", m.Type, m.Payload)
				}
				return p.Data.DeliveryUpdated, true
			}
		}
		// The subscription is live once it reports a test delivery of the (inactive) probe.
		for live := false; !live; {
			eg.MustGraphQL(servertest.AdminToken, `mutation($id: ID!) { testWebhook(id: $id) { id } }`, map[string]any{"id": probe}, nil)
			_, live = read(500 * time.Millisecond)
		}

		publishOne(t, eg, map[string]any{"type": "payment.completed", "payload": validPayloads["payment.completed"]})
		var seen []int
		var last update
		for last.Status != "SUCCESS" {
			u, ok := read(10 * time.Second)
			if !ok {
				t.Fatalf("no update after %v; attempt counts seen %v", last, seen)
			}
			if u.Webhook.ID != hook {
				continue
			}
			if len(seen) > 0 && u.AttemptCount < seen[len(seen)-1] {
				t.Errorf("attemptCount went back from %d to %d", seen[len(seen)-1], u.AttemptCount)
			}
			seen = append(seen, u.AttemptCount)
			last = u
		}
		if seen[0] != 0 || !slices.Contains(seen, 1) || !slices.Contains(seen, 2) || seen[len(seen)-1] != 3 {
			t.Errorf("got attemptCounts %v, want the creation (0) and every attempt (1, 2, 3)", seen)
		}
		var statuses []int
		for _, a := range last.Attempts {
			statuses = append(statuses, *a.ResponseStatus)
		}
		if !slices.Equal(statuses, []int{500, 500, 200}) {
			t.Errorf("got attempt statuses %v in the final update, want [500 500 200]", statuses)
		}
	})
}

// TestRotationSignsWithEverySecret: during a rotation's grace period a request verifies with the
// old and the new secret (one Standard Webhooks signature each) and the legacy header uses the
// new one; a secret rotated away with no grace no longer verifies.
func TestRotationSignsWithEverySecret(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		rc := newHookReceiver(t, nil)
		hook, first := createHook(t, eg, map[string]any{"url": rc.URL})
		rotate := func(grace int) string {
			t.Helper()
			var out struct{ RotateWebhookSecret struct{ Secret string } }
			eg.MustGraphQL(servertest.AdminToken, `mutation($id: ID!, $g: Int) { rotateWebhookSecret(id: $id, gracePeriodSeconds: $g) { secret } }`,
				map[string]any{"id": hook, "g": grace}, &out)
			return out.RotateWebhookSecret.Secret
		}
		send := func() hookRequest {
			t.Helper()
			n := len(rc.requests(hook))
			eg.MustGraphQL(servertest.AdminToken, `mutation($id: ID!) { testWebhook(id: $id) { id } }`, map[string]any{"id": hook}, nil)
			waitUntil(t, "the test request", func() (bool, string) {
				return len(rc.requests(hook)) > n, fmt.Sprint(hookDeliveries(t, eg, hook))
			})
			return rc.requests(hook)[n]
		}
		// signedBy lists which secrets a request's webhook-signature verifies with, one at a time.
		signedBy := func(r hookRequest, secrets ...string) []bool {
			out := make([]bool, len(secrets))
			for i, s := range secrets {
				wh, err := standardwebhooks.NewWebhook(s)
				if err != nil {
					t.Fatal(err)
				}
				out[i] = wh.Verify(r.body, r.header) == nil
			}
			return out
		}

		second := rotate(3600)
		r := send()
		if got := signedBy(r, second, first); !slices.Equal(got, []bool{true, true}) {
			t.Errorf("during the grace period: verifies with [new old] = %v, want both", got)
		}
		if sigs := strings.Fields(r.header.Get("webhook-signature")); len(sigs) != 2 {
			t.Errorf("got %d signatures %v, want 2 (one per valid secret)", len(sigs), sigs)
		}
		if err := verifyRequest(second, r); err != nil {
			t.Errorf("new secret: %v", err)
		}
		if err := verifyRequest(first, r); err == nil {
			t.Error("the legacy header verifies with the old secret, want only the newest")
		}

		third := rotate(0)
		r = send()
		if got := signedBy(r, third, second, first); !slices.Equal(got, []bool{true, false, true}) {
			t.Errorf("after rotating with no grace: verifies with [newest, replaced, first] = %v, want [true false true] (first is still in its grace period)", got)
		}
		if err := verifyRequest(third, r); err != nil {
			t.Errorf("newest secret: %v", err)
		}
	})
}
