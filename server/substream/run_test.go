package substream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventgate/eventgate/graph/scalar"
	"github.com/eventgate/eventgate/server/substream"
	"github.com/eventgate/eventgate/server/substream/substreamtest"
)

// textEncoder makes frames that are easy to assert on.
type textEncoder struct{}

func (textEncoder) Shared(payload []byte) []byte { return payload }

func (textEncoder) Next(shared []byte) substream.Frame {
	return substream.Frame{Data: append([]byte("next "), shared...)}
}

func (textEncoder) Error(errs gqlerror.List) []byte {
	b, _ := json.Marshal(errs)
	return append([]byte("error "), b...)
}

func (textEncoder) Complete() []byte { return []byte("complete") }

// start runs op on a goroutine owned by the test and returns its queue.
func start(t *testing.T, exec graphql.GraphExecutor, query string, size int) *substream.Queue {
	t.Helper()
	ctx, cancel := context.WithCancel(graphql.StartOperationTrace(context.Background()))
	rc, errs := exec.CreateOperationContext(ctx, &graphql.RawParams{Query: query})
	if errs != nil {
		cancel()
		t.Fatalf("create operation: %v", errs)
	}
	q := substream.NewQueue(size, nil, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		substream.Run(ctx, exec, rc, q, textEncoder{}, nil, nil)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return q
}

// pop waits for the next thing the queue has for the writer.
func pop(t *testing.T, q *substream.Queue) (substream.Frame, substream.Status) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if f, st, _ := q.Pop(); st != substream.None {
			return f, st
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("queue stayed empty")
	return substream.Frame{}, substream.None
}

func TestRunPairsResponsesWithReportedCursors(t *testing.T) {
	src, exec := substreamtest.NewExecutor()
	var stored []string
	for range 5 {
		ev := src.Event(0)
		src.Store(ev)
		stored = append(stored, string(scalar.CursorFor(int64(ev.ID))))
	}
	// Replay of five stored events through a queue of two: it must wait, never overflow.
	after := scalar.CursorFor(1)
	q := start(t, exec, fmt.Sprintf(`subscription { events(after: %q) { id cursor } }`, after), 2)
	for i := 1; i < 5; i++ {
		f, st := pop(t, q)
		if st != substream.Data {
			t.Fatalf("frame %d: got status %v, want Data", i, st)
		}
		if f.Cursor != stored[i] {
			t.Errorf("frame %d cursor: got %q, want %q", i, f.Cursor, stored[i])
		}
		var resp struct {
			Data struct{ Events struct{ Cursor string } }
		}
		if err := json.Unmarshal(f.Data[len("next "):], &resp); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if resp.Data.Events.Cursor != f.Cursor {
			t.Errorf("frame %d: response cursor %q, frame cursor %q, want equal", i, resp.Data.Events.Cursor, f.Cursor)
		}
	}
	if got, want := q.ResumeCursor(), stored[4]; got != want {
		t.Errorf("resume cursor: got %q, want %q", got, want)
	}
	// Then live: a published event arrives with its cursor.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := src.Event(0)
	if err := src.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	f, st := pop(t, q)
	if want := string(scalar.CursorFor(int64(ev.ID))); st != substream.Data || f.Cursor != want {
		t.Fatalf("live frame: got %v %q, want Data %q", st, f.Cursor, want)
	}
}

func TestRunRefusedSubscriptionEndsWithError(t *testing.T) {
	src, exec := substreamtest.NewExecutor()
	src.ExpiredCursor = scalar.CursorFor(7)
	tests := []struct {
		name, query, code string
	}{
		{"forbidden", fmt.Sprintf(`subscription { events(types: [%q]) { id } }`, substreamtest.TypeForbidden), "FORBIDDEN"},
		{"cursor expired", fmt.Sprintf(`subscription { events(after: %q) { id } }`, src.ExpiredCursor), "CURSOR_EXPIRED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := start(t, exec, tc.query, 4)
			f, st := pop(t, q)
			if st != substream.Final {
				t.Fatalf("status: got %v, want Final", st)
			}
			var errs []struct{ Extensions map[string]any }
			if err := json.Unmarshal(f.Data[len("error "):], &errs); err != nil {
				t.Fatalf("frame %q: %v", f.Data, err)
			}
			if len(errs) != 1 || errs[0].Extensions["code"] != tc.code {
				t.Errorf("errors: got %s, want one with code %s", f.Data, tc.code)
			}
		})
	}
}

func TestRunQueryEndsWithComplete(t *testing.T) {
	_, exec := substreamtest.NewExecutor()
	q := start(t, exec, `{ viewer { name } }`, 4)
	f, st := pop(t, q)
	if st != substream.Data || string(f.Data) != `next {"data":{"viewer":{"name":""}}}` {
		t.Fatalf("first: got %v %s, want the viewer data", st, f.Data)
	}
	f, st = pop(t, q)
	if st != substream.Final || string(f.Data) != "complete" {
		t.Fatalf("second: got %v %s, want Final complete", st, f.Data)
	}
}
