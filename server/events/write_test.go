package events

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/server/apperr"
	"github.com/eventgate/eventgate/server/eventbus"
	"github.com/eventgate/eventgate/server/store/sqlitetest"
)

func newTestService(t *testing.T) (*Service, *eventbus.Bus[*ent.Event]) {
	t.Helper()
	st := sqlitetest.Open(t, "normal")
	bus := eventbus.New[*ent.Event]()
	svc := NewService(st.Client, bus, eventbus.New[*ent.Delivery](), Options{PublishRate: 1e6, PublishBurst: 1e6}, slog.New(slog.DiscardHandler))
	return svc, bus
}

func request(t *testing.T, svc *Service, id string, userID int) *writeReq {
	t.Helper()
	payload, _ := json.Marshal(map[string]any{"user_id": userID})
	p, err := svc.prepare(Input{Type: "user.created", Payload: payload, ID: &id}, "")
	if err != nil {
		t.Fatal(err)
	}
	return &writeReq{ctx: context.Background(), preps: []prepared{p}, done: make(chan struct{})}
}

// TestGroupCommitIsolatesRefusedCalls: calls that share a transaction succeed or fail on their
// own — a reused id with another payload fails alone — and reach the bus in log order.
func TestGroupCommitIsolatesRefusedCalls(t *testing.T) {
	svc, bus := newTestService(t)
	sub := bus.Subscribe(10)
	first, conflict, third, repeat := request(t, svc, "a", 1), request(t, svc, "a", 2), request(t, svc, "b", 3), request(t, svc, "a", 1)
	svc.writeGroup([]*writeReq{first, conflict, third, repeat})
	if first.err != nil || third.err != nil || repeat.err != nil {
		t.Fatalf("got errors %v / %v / %v, want the valid calls to succeed", first.err, third.err, repeat.err)
	}
	if e, ok := apperr.As(conflict.err); !ok || e.Code != apperr.BadUserInput || e.Field != "id" {
		t.Fatalf("conflicting call: got %v, want BAD_USER_INPUT on id", conflict.err)
	}
	if repeat.out[0].ID != first.out[0].ID || len(repeat.fresh) != 0 {
		t.Fatalf("repeat of id a created a new event")
	}
	for _, want := range []string{"a", "b"} {
		if e, ok, _ := sub.Next(); !ok || e.EventID != want {
			t.Fatalf("bus: got %v, want %s", e, want)
		}
	}
	n, err := svc.client.Event.Query().Count(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("got %d stored events (%v), want 2", n, err)
	}
}

// TestRefusedBatchWritesNothing: a call whose batch reuses one of its own new ids with another
// payload is refused as a whole — none of its events is stored — while the calls beside it in the
// same transaction are stored.
func TestRefusedBatchWritesNothing(t *testing.T) {
	svc, _ := newTestService(t)
	bad := request(t, svc, "fresh", 1)
	again := request(t, svc, "dup", 2)
	other := request(t, svc, "dup", 3) // the same id as again, another payload
	bad.preps = append(bad.preps, again.preps[0], other.preps[0])
	ok := request(t, svc, "fine", 4)
	svc.writeGroup([]*writeReq{bad, ok})
	if e, isApp := apperr.As(bad.err); !isApp || e.Code != apperr.BadUserInput {
		t.Fatalf("batch reusing its own id: got %v, want BAD_USER_INPUT", bad.err)
	}
	if ok.err != nil {
		t.Fatalf("the call beside it: %v", ok.err)
	}
	ids, err := svc.client.Event.Query().Select("event_id").Strings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != "fine" {
		t.Fatalf("stored %v, want only the call beside it", ids)
	}
}
