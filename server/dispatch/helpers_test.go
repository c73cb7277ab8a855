package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"entgo.io/ent/dialect"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/delivery"
	"github.com/eventgate/eventgate/ent/schema"
	"github.com/eventgate/eventgate/server/netguard"
	"github.com/eventgate/eventgate/server/secretbox"
	"github.com/eventgate/eventgate/server/signing"
	"github.com/eventgate/eventgate/server/store"
	"github.com/eventgate/eventgate/server/store/pgtest"
)

// testEnv is a migrated SQLite database in a temp dir, a key and a guard that lets loopback
// through (httptest receivers listen there).
type testEnv struct {
	client *ent.Client
	box    *secretbox.Box
	guard  *netguard.Guard
	// dialect is the client's SQL dialect when it is not SQLite; start passes it on.
	dialect string
}

func newEnv(t testing.TB) *testEnv {
	t.Helper()
	return newEnvOn(t, openSQLite(t))
}

// eachDB runs f as a subtest per storage backend: "sqlite" and "postgres" (a fresh schema;
// skipped when PostgreSQL is unreachable, failed under CI=true — see pgtest).
func eachDB(t *testing.T, f func(t *testing.T, e *testEnv)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		e := newEnvOn(t, openPostgres(t))
		e.dialect = dialect.Postgres
		f(t, e)
	})
}

func newEnvOn(t testing.TB, client *ent.Client) *testEnv {
	t.Helper()
	key := make([]byte, secretbox.KeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{
		client: client,
		box:    box,
		guard:  netguard.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, nil),
	}
}

// openSQLite opens and migrates an SQLite file in a temp dir.
func openSQLite(t testing.TB) *ent.Client {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "eventgate.db"), "full")
	if err != nil {
		t.Fatal(err)
	}
	return migrated(t, st)
}

// openPostgres opens and migrates a fresh PostgreSQL schema.
func openPostgres(t testing.TB) *ent.Client {
	t.Helper()
	url := pgtest.Schema(t)
	st, err := store.OpenPostgres(context.Background(), url, 8)
	if err != nil {
		t.Fatal(err)
	}
	return migrated(t, st)
}

func migrated(t testing.TB, st *store.Store) *ent.Client {
	t.Helper()
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st.Client
}

// testConfig is a fast configuration: millisecond retries, a quick poll.
func testConfig() Config {
	return Config{
		Workers:            8,
		PerWebhookInFlight: 4,
		PollInterval:       50 * time.Millisecond,
		Schedule:           []time.Duration{time.Millisecond, time.Millisecond},
		Jitter:             -1,
		UserAgent:          "eventgate/test",
		InstanceID:         "test-instance",
		ShutdownTimeout:    2 * time.Second,
	}
}

// start runs a dispatcher until the test ends.
func (e *testEnv) start(t testing.TB, cfg Config, hooks Hooks) *Dispatcher {
	t.Helper()
	d := e.newDispatcher(cfg, hooks)
	d.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return d
}

// newDispatcher makes a dispatcher on the env's database, not started.
func (e *testEnv) newDispatcher(cfg Config, hooks Hooks) *Dispatcher {
	if cfg.Dialect == "" {
		cfg.Dialect = e.dialect
	}
	return New(e.client, e.box, e.guard, cfg, hooks, slog.New(slog.DiscardHandler))
}

// webhooks creates n webhooks for url.
func (e *testEnv) webhooks(t testing.TB, url string, n int) []*ent.Webhook {
	t.Helper()
	hooks := make([]*ent.Webhook, n)
	for i := range hooks {
		hooks[i], _ = e.webhook(t, url)
	}
	return hooks
}

// hookOpts change a webhook before it is created.
type hookOpt func(*ent.WebhookCreate)

// webhook creates a webhook for url with a fresh secret, returned too.
func (e *testEnv) webhook(t testing.TB, url string, opts ...hookOpt) (*ent.Webhook, string) {
	t.Helper()
	secret, err := signing.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	c := e.client.Webhook.Create().
		SetName("test").SetURL(url).SetEventTypes([]string{"user.created"}).
		SetSecretCiphertext(e.seal(t, secret)).SetTimeoutSeconds(5)
	for _, o := range opts {
		o(c)
	}
	w, err := c.Save(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return w, secret
}

func (e *testEnv) seal(t testing.TB, plain string) []byte {
	t.Helper()
	sealed, err := e.box.Seal([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// withHeaders sets sealed custom headers.
func (e *testEnv) withHeaders(t testing.TB, headers map[string]string) hookOpt {
	raw, err := json.Marshal(headers)
	if err != nil {
		t.Fatal(err)
	}
	sealed := e.seal(t, string(raw))
	names := make([]string, 0, len(headers))
	for n := range headers {
		names = append(names, n)
	}
	return func(c *ent.WebhookCreate) {
		c.SetCustomHeadersCiphertext(sealed).SetCustomHeaderNames(names)
	}
}

// withOldSecret adds a previous secret valid until expires.
func (e *testEnv) withOldSecret(t testing.TB, secret string, expires time.Time) hookOpt {
	sealed := e.seal(t, secret)
	return func(c *ent.WebhookCreate) {
		c.SetOldSecrets([]schema.OldSecret{{Ciphertext: sealed, ExpiresAt: expires.UTC()}})
	}
}

// event stores an event with the given payload.
func (e *testEnv) event(t testing.TB, typ, payload string) *ent.Event {
	t.Helper()
	ev, err := e.client.Event.Create().
		SetEventID(randomID(t)).SetType(typ).SetPayload([]byte(payload)).
		SetPayloadHash("x").SetOccurredAt(time.Date(2026, 1, 2, 15, 4, 5, 123000000, time.UTC)).
		Save(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func randomID(t testing.TB) string {
	t.Helper()
	return "evt_" + rand.Text()
}

// deliver stores a due delivery of ev to w.
func (e *testEnv) deliver(t testing.TB, w *ent.Webhook, ev *ent.Event) *ent.Delivery {
	t.Helper()
	d, err := e.client.Delivery.Create().
		SetWebhookID(w.ID).SetEventID(ev.ID).SetEventType(ev.Type).
		SetNextAttemptAt(time.Now().UTC()).
		Save(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// userCreatedDeliveries stores n due deliveries to w, each of its own user.created event, and
// returns their ids in order.
func (e *testEnv) userCreatedDeliveries(t testing.TB, w *ent.Webhook, n int) []int {
	t.Helper()
	ids := make([]int, n)
	for i := range ids {
		ids[i] = e.deliver(t, w, e.event(t, "user.created", userPayload)).ID
	}
	return ids
}

// deliverMany stores n due deliveries of ev to w, in one statement per 500, and returns their ids
// in creation order.
func (e *testEnv) deliverMany(t testing.TB, w *ent.Webhook, ev *ent.Event, n int) []int {
	t.Helper()
	ids := make([]int, 0, n)
	for len(ids) < n {
		batch := make([]*ent.DeliveryCreate, min(500, n-len(ids)))
		for i := range batch {
			batch[i] = e.client.Delivery.Create().
				SetWebhookID(w.ID).SetEventID(ev.ID).SetEventType(ev.Type).SetNextAttemptAt(time.Now().UTC())
		}
		ds, err := e.client.Delivery.CreateBulk(batch...).Save(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

// slowOK answers 200 after 10 ms, so that a lane's claimed requests queue up behind it.
func slowOK(w http.ResponseWriter, _ *http.Request, _ int) {
	time.Sleep(10 * time.Millisecond)
	w.WriteHeader(http.StatusOK)
}

// reload reads a delivery again.
func (e *testEnv) reload(t testing.TB, id int) *ent.Delivery {
	t.Helper()
	d, err := e.client.Delivery.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// attempts lists a delivery's attempts in number order.
func (e *testEnv) attempts(t testing.TB, deliveryID int) []*ent.DeliveryAttempt {
	t.Helper()
	d, err := e.client.Delivery.Get(context.Background(), deliveryID)
	if err != nil {
		t.Fatal(err)
	}
	as, err := d.QueryAttempts().Order(ent.Asc("number")).All(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// waitStatus waits (generously) until the delivery has the status, and returns it.
func (e *testEnv) waitStatus(t testing.TB, id int, want delivery.Status) *ent.Delivery {
	t.Helper()
	var d *ent.Delivery
	waitFor(t, func() bool {
		d = e.reload(t, id)
		return d.Status == want
	}, "delivery %d to become %s", id, want)
	return d
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
	path   string
	at     time.Time
}

// receiver is an httptest server that keeps every request and answers with respond.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []received
	respond func(w http.ResponseWriter, r *http.Request, n int) // n: 1-based request number
}

func newReceiver(t testing.TB, respond func(w http.ResponseWriter, r *http.Request, n int)) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{header: r.Header.Clone(), body: body, path: r.URL.Path, at: time.Now()})
		n := len(rc.reqs)
		rc.mu.Unlock()
		if rc.respond != nil {
			rc.respond(w, r, n)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

// heldReceiver holds every request until release is called (or the request ends), then answers
// 200. release may be called more than once; it is called when the test ends.
func heldReceiver(t testing.TB) (rc *receiver, release func()) {
	t.Helper()
	held := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(held) }) }
	rc = newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-held:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	t.Cleanup(release)
	return rc, release
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.reqs)
}

// status answers every request with code.
func status(code int) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(code) }
}
