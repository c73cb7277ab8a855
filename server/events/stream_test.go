package events

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/graph/scalar"
)

func publishUser(t *testing.T, svc *Service, userID int) *ent.Event {
	t.Helper()
	payload, _ := json.Marshal(map[string]any{"user_id": userID})
	out, _, err := svc.Publish(context.Background(), []Input{{Type: "user.created", Payload: payload}}, func(int) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// TestStreamThatFallsBehindTheBusMissesNothing: a stream whose reader stalls while far more
// events are published than its buffer holds is dropped by the bus, reads what it missed from
// the log, and delivers every event once, in log order.
func TestStreamThatFallsBehindTheBusMissesNothing(t *testing.T) {
	svc, bus := newTestService(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := svc.Stream(ctx, nil, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for i := range 30 {
		want = append(want, publishUser(t, svc, i+1).ID)
	}
	for i, id := range want {
		e := <-stream
		if e == nil {
			t.Fatalf("stream ended after %d events, want %d", i, len(want))
		}
		if e.ID != id {
			t.Fatalf("event %d: got id %d, want %d", i, e.ID, id)
		}
	}
	// Nothing more: the next event published is the next one received.
	next := publishUser(t, svc, 99)
	if e := <-stream; e == nil || e.ID != next.ID {
		t.Fatalf("got %v, want event %d", e, next.ID)
	}
	if got := bus.Subscribers(); got != 1 {
		t.Fatalf("got %d bus subscriptions, want 1 (lagged ones are closed)", got)
	}
}

// TestDeliveryUpdatesEndWhenBehind: a live-only stream of delivery changes whose reader fell
// more than its buffer behind ends instead of skipping changes silently.
func TestDeliveryUpdatesEndWhenBehind(t *testing.T) {
	svc, _ := newTestService(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	updates := svc.DeliveryUpdates(ctx, func(*ent.Delivery) bool { return true }, 2)
	for i := range 10 {
		svc.PublishDeliveryChanges(ctx, &ent.Delivery{ID: i + 1})
	}
	got := 0
	for range updates {
		got++
	}
	if got >= 10 {
		t.Fatalf("got all %d changes, want the stream to end when it fell behind", got)
	}
}

func TestCursorMemo(t *testing.T) {
	var m cursorMemo
	// 5 and 261 share a slot: each must still get its own cursor, however they alternate.
	for _, id := range []int64{5, 5, 261, 5, 261, 261, 1 << 40} {
		if got, want := m.get(id), string(scalar.CursorFor(id)); got != want {
			t.Fatalf("cursor of %d: got %s, want %s", id, got, want)
		}
	}
}
