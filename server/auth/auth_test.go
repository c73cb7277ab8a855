package auth

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/server/store/sqlitetest"
)

// gatedDriver counts the token lookups and holds each one until the gate opens.
type gatedDriver struct {
	dialect.Driver
	lookups atomic.Int64
	gate    chan struct{}
}

func (d *gatedDriver) Query(ctx context.Context, query string, args, v any) error {
	if strings.Contains(query, "api_tokens") {
		d.lookups.Add(1)
		select {
		case <-d.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return d.Driver.Query(ctx, query, args, v)
}

// newGatedService is a Service over a real SQLite file whose token lookups go through a gate, and
// a stream context of a fresh token, whose recheck is due (the clock moved past the cache).
func newGatedService(t *testing.T) (*Service, *gatedDriver, context.Context) {
	t.Helper()
	ctx := context.Background()
	st := sqlitetest.Open(t, "normal")
	gate := &gatedDriver{Driver: entsql.OpenDB(dialect.SQLite, st.DB), gate: make(chan struct{})}
	svc := NewService(ent.NewClient(ent.Driver(gate)), slog.New(slog.DiscardHandler))
	tok, _, err := svc.Create(ctx, st.Client, CreateInput{Name: "streams", Scopes: []string{ScopeEventsSubscribe}})
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	svc.now = func() time.Time { return later }
	return svc, gate, WithPrincipal(ctx, principalOf(tok))
}

// TestRechecksOfOneTokenShareALookup: when the recheck of a token falls due, its many open
// streams ask the database once between them, not once each.
func TestRechecksOfOneTokenShareALookup(t *testing.T) {
	svc, gate, streamCtx := newGatedService(t)
	const streams = 50
	var started, done sync.WaitGroup
	errs := make(chan error, streams)
	for range streams {
		started.Add(1)
		done.Go(func() {
			started.Done()
			errs <- svc.Recheck(streamCtx)
		})
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // let the streams join the lookup in flight
	close(gate.gate)
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("recheck of a valid token: %v", err)
		}
	}
	if n := gate.lookups.Load(); n >= streams/2 {
		t.Fatalf("%d streams made %d token lookups; want them shared", streams, n)
	}
}

// TestEndedStreamDoesNotFailOthersLookup: the stream whose recheck started the shared lookup
// ends meanwhile; the other stream still gets the answer.
func TestEndedStreamDoesNotFailOthersLookup(t *testing.T) {
	svc, gate, streamCtx := newGatedService(t)
	firstCtx, cancel := context.WithCancel(streamCtx)
	first := make(chan error, 1)
	go func() { first <- svc.Recheck(firstCtx) }()
	for gate.lookups.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() { second <- svc.Recheck(streamCtx) }()
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("ended stream: %v, want context.Canceled", err)
	}
	close(gate.gate)
	if err := <-second; err != nil {
		t.Fatalf("the other stream: %v", err)
	}
}
