package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/webhook"
	"github.com/eventgate/eventgate/server/signing"
)

// lane is the per-webhook state that outlives one claim: the in-flight slots, the rate limiter
// and the decrypted configuration.
type lane struct {
	id    int
	pacer pacer
	// disabled says the webhook's claimed requests not sent yet must be given back instead of
	// sent: it was disabled (by a 410, which its worker flags at once, or by failures), or it
	// changed or went inactive since they were claimed (WebhookChanged, the poll's checkLanes).
	// book clears it when it loads the webhook active again, with its settings as they are now.
	disabled atomic.Bool
	// gone is set with disabled by the worker that got a 410 Gone, until that outcome is
	// recorded: a claim meanwhile (the webhook is still active in the database) must not let
	// the lane's requests go out again.
	gone atomic.Bool
	// target is the webhook's configuration as last loaded; only the coordinator replaces it
	// (targetFor). A worker gives back a job claimed under an older target (the webhook changed
	// since) rather than send it with the old URL, secret or headers.
	target atomic.Pointer[target]

	// queue holds the lane's launched jobs in claim order, from head on; workers is how many
	// goroutines take from it (at most PerWebhookInFlight). Guarded by mu.
	mu      sync.Mutex
	queue   []*job
	head    int
	workers int

	// Owned by the coordinator.
	claimed  int  // claimed and not yet recorded
	backlog  bool // more of its deliveries may be due
	lastUsed time.Time
	// avgDuration is a moving average of its request times (0: none measured yet).
	avgDuration time.Duration
}

// target is a webhook's request configuration, decrypted once and shared by its requests until
// the row's updated_at changes. It is immutable but for the signer cache.
type target struct {
	updatedAt time.Time
	endpoint  *endpoint // nil when the URL cannot be requested (the attempt says so)
	format    webhook.PayloadFormat
	timeout   time.Duration
	rate      int // requests per second; 0 = unlimited
	secret    string
	old       []oldSecret // newest first
	headers   []header    // custom headers, reserved names removed

	signer atomic.Pointer[signerCache]
}

type oldSecret struct {
	secret  string
	expires time.Time
}

type header struct{ name, value string }

// signerCache is a Signer for the secrets valid until until (zero: no old secret will expire).
type signerCache struct {
	signer *signing.Signer
	until  time.Time
}

// reservedHeader says whether a custom header name is one a custom header cannot replace
// (DESIGN.md §6) or one the HTTP client owns.
func reservedHeader(name string) bool {
	switch strings.ToLower(name) {
	case "content-type", "user-agent",
		"webhook-id", "webhook-timestamp", "webhook-signature",
		"x-webhook-event", "x-webhook-id", "x-webhook-delivery", "x-webhook-attempt", "x-webhook-signature",
		"host", "content-length", "transfer-encoding", "connection":
		return true
	}
	return false
}

// targetFor returns the lane's target, rebuilding it when the webhook row changed.
func (d *Dispatcher) targetFor(l *lane, w *ent.Webhook, now time.Time) (*target, error) {
	// A webhook we disabled that is active again was re-enabled by an admin; a lane whose 410
	// Gone is not recorded yet stays held.
	if !l.gone.Load() {
		l.disabled.Store(false)
	}
	if cur := l.target.Load(); cur != nil && cur.updatedAt.Equal(w.UpdatedAt) {
		return cur, nil
	}
	t := &target{
		updatedAt: w.UpdatedAt,
		format:    w.PayloadFormat,
		timeout:   time.Duration(w.TimeoutSeconds) * time.Second,
	}
	t.endpoint, _ = parseEndpoint(w.URL)
	if t.timeout <= 0 {
		t.timeout = 15 * time.Second
	}
	if w.RateLimitPerSecond != nil && *w.RateLimitPerSecond > 0 {
		t.rate = *w.RateLimitPerSecond
	}
	secret, err := d.box.Open(w.SecretCiphertext)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	t.secret = string(secret)
	for _, o := range w.OldSecrets {
		if !o.ExpiresAt.After(now) {
			continue
		}
		s, err := d.box.Open(o.Ciphertext)
		if err != nil {
			return nil, fmt.Errorf("old webhook secret: %w", err)
		}
		t.old = append(t.old, oldSecret{secret: string(s), expires: o.ExpiresAt})
	}
	if w.CustomHeadersCiphertext != nil && len(*w.CustomHeadersCiphertext) > 0 {
		plain, err := d.box.Open(*w.CustomHeadersCiphertext)
		if err != nil {
			return nil, fmt.Errorf("custom headers: %w", err)
		}
		var m map[string]string
		if err := json.Unmarshal(plain, &m); err != nil {
			return nil, fmt.Errorf("custom headers: %w", err)
		}
		for name, value := range m {
			if reservedHeader(name) {
				continue
			}
			t.headers = append(t.headers, header{name: http.CanonicalHeaderKey(name), value: value})
		}
		sort.Slice(t.headers, func(i, j int) bool { return t.headers[i].name < t.headers[j].name })
	}
	l.target.Store(t)
	return t, nil
}

// signerAt returns a Signer for the secrets valid at now: the current one first, then the
// unexpired old ones, newest first.
func (t *target) signerAt(now time.Time) *signing.Signer {
	if c := t.signer.Load(); c != nil && (c.until.IsZero() || now.Before(c.until)) {
		return c.signer
	}
	secrets := []string{t.secret}
	var until time.Time
	for _, o := range t.old {
		if !o.expires.After(now) {
			continue
		}
		secrets = append(secrets, o.secret)
		if until.IsZero() || o.expires.Before(until) {
			until = o.expires
		}
	}
	c := &signerCache{signer: signing.NewSigner(secrets), until: until}
	t.signer.Store(c)
	return c.signer
}

// pacer spaces a webhook's requests at most perSecond apart. It waits rather than fails, and
// allows no burst: evenly spaced requests are what a receiver that states a rate can take.
type pacer struct {
	mu   sync.Mutex
	next time.Time
}

// wait blocks until the next request may go, or ctx is done.
func (p *pacer) wait(ctx context.Context, perSecond int) error {
	if perSecond <= 0 {
		return nil
	}
	interval := time.Second / time.Duration(perSecond)
	p.mu.Lock()
	now := time.Now()
	at := p.next
	if at.Before(now) {
		at = now
	}
	p.next = at.Add(interval)
	p.mu.Unlock()
	delay := at.Sub(now)
	if delay <= 0 {
		return nil
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
