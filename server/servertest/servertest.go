// Package servertest starts real eventgate instances for tests: an SQLite file in a temp dir,
// the real router on an httptest server, and a small GraphQL-over-HTTP client.
package servertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/server"
	"github.com/eventgate/eventgate/server/config"
	"github.com/eventgate/eventgate/server/store/pgtest"
)

// AdminToken is the bootstrap admin token of every test instance.
const AdminToken = "test-admin-token-0123456789"

// Instance is a running eventgate.
type Instance struct {
	URL     string
	DataDir string
	Config  *config.Config
	App     *server.App
	t       testing.TB
	rcvbuf  int // kernel receive buffer of the next WebSocket dial (0: default)
}

// Start runs an instance; adjust changes the configuration before it starts.
func Start(t testing.TB, adjust func(*config.Config)) *Instance {
	t.Helper()
	cfg, err := config.Load(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = AdminToken
	cfg.SQLiteSync = "normal"
	cfg.RetrySchedule = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond}
	cfg.AllowedTargets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg.ShutdownTimeout = 2 * time.Second
	if adjust != nil {
		adjust(cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("EVENTGATE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := server.Open(ctx, cfg, log, io.Discard)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	app.Start(ctx)
	srv := httptest.NewServer(app.Handler())
	t.Cleanup(func() {
		closeCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		app.CloseStreams(closeCtx)
		srv.Close()
		cancel()
		if err := app.Close(closeCtx); err != nil {
			t.Logf("close: %v", err)
		}
	})
	return &Instance{URL: srv.URL, DataDir: cfg.DataDir, Config: cfg, App: app, t: t}
}

// Response is a GraphQL response as a client sees it.
type Response struct {
	Status int
	Data   json.RawMessage
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	}
	Body []byte
}

// Code returns the extensions.code of the first error, or "".
func (r *Response) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// Field returns the extensions.field of the first error, or "".
func (r *Response) Field() string {
	if len(r.Errors) == 0 {
		return ""
	}
	f, _ := r.Errors[0].Extensions["field"].(string)
	return f
}

// Decode unmarshals data into v, failing the test if there were errors.
func (r *Response) Decode(t testing.TB, v any) {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors: %s", r.Body)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decode data %s: %v", r.Data, err)
	}
}

// GraphQL posts a query with a bearer token ("" for none).
func (in *Instance) GraphQL(token, query string, vars map[string]any) *Response {
	in.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, in.URL+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := &Response{Status: resp.StatusCode, Body: raw}
	var parsed struct {
		Data   json.RawMessage `json:"data"`
		Errors json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(raw, &parsed); err != nil {
		in.t.Fatalf("response is not JSON (%d): %s", resp.StatusCode, raw)
	}
	out.Data = parsed.Data
	if len(parsed.Errors) > 0 {
		_ = json.Unmarshal(parsed.Errors, &out.Errors)
	}
	return out
}

// MustGraphQL is GraphQL that fails the test on any error and decodes data into v.
func (in *Instance) MustGraphQL(token, query string, vars map[string]any, v any) {
	in.t.Helper()
	r := in.GraphQL(token, query, vars)
	if r.Status != http.StatusOK {
		in.t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	if v == nil {
		if len(r.Errors) > 0 {
			in.t.Fatalf("unexpected errors: %s", r.Body)
		}
		return
	}
	r.Decode(in.t, v)
}

// CreateToken creates an API token with scopes and returns its secret.
func (in *Instance) CreateToken(name string, scopes []string, eventTypes []string) string {
	in.t.Helper()
	vars := map[string]any{"input": map[string]any{"name": name, "scopes": scopes}}
	if eventTypes != nil {
		vars["input"].(map[string]any)["eventTypes"] = eventTypes
	}
	var out struct {
		CreateApiToken struct{ Secret string } `json:"createApiToken"`
	}
	in.MustGraphQL(AdminToken, `mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { secret } }`, vars, &out)
	if !strings.HasPrefix(out.CreateApiToken.Secret, "egt_") {
		in.t.Fatalf("got token secret %q", out.CreateApiToken.Secret)
	}
	return out.CreateApiToken.Secret
}

// Starter starts an instance on one storage backend.
type Starter func(t testing.TB, adjust func(*config.Config)) *Instance

// Each runs f as a subtest per storage backend: "sqlite" and "postgres" (a fresh schema per
// test; skipped with one line when PostgreSQL is unreachable, failed under CI=true).
func Each(t *testing.T, f func(t *testing.T, start Starter)) {
	t.Run("sqlite", func(t *testing.T) { f(t, Start) })
	t.Run("postgres", func(t *testing.T) { f(t, StartPostgres) })
}

// StartPostgres runs an instance on a fresh PostgreSQL schema.
func StartPostgres(t testing.TB, adjust func(*config.Config)) *Instance {
	t.Helper()
	url := pgtest.Schema(t)
	return Start(t, func(c *config.Config) {
		c.DatabaseURL = url
		c.SecretKey = TestSecretKey
		c.DatabaseMaxConns = 8
		if adjust != nil {
			adjust(c)
		}
	})
}

// TestSecretKey is the secret key of PostgreSQL test instances (base64 of 32 bytes).
const TestSecretKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
