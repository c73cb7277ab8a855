package streamctl_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/server/streamctl"
)

// TestQueueDirectKeepsOrder emits a mix of items to execute and pre-rendered live items while
// the consumer is slow with the former: every item must come out exactly once, in emit order,
// whichever path it took.
func TestQueueDirectKeepsOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	q := streamctl.NewQueue(nil, "")
	var mu sync.Mutex
	var out []string
	record := func(it streamctl.Item) {
		mu.Lock()
		out = append(out, it.Cursor)
		mu.Unlock()
	}
	direct := 0
	q.SetDirect(func(it streamctl.Item) bool {
		direct++
		record(it)
		return true
	})
	const n = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			it, ok := q.Wait(ctx)
			if !ok {
				return
			}
			if i%7 == 0 {
				time.Sleep(50 * time.Microsecond) // a slow execution
			}
			record(it)
			q.Handled()
		}
	}()
	var want []string
	for i := range n {
		it := streamctl.Item{Cursor: fmt.Sprint(i), Key: int64(i + 1)}
		switch i % 5 {
		case 1, 2, 3:
			it.Data = []byte("rendered") // may go direct
		case 4:
			it.Data, it.Replay = []byte("rendered"), true // replay: never direct
		}
		want = append(want, it.Cursor)
		if !q.Emit(ctx, it) {
			t.Fatalf("emit %d: got false, want true", i)
		}
	}
	q.End()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(out) != n {
		t.Fatalf("got %d items, want %d", len(out), n)
	}
	for i := range want {
		if out[i] != want[i] {
			t.Fatalf("item %d: got %s, want %s", i, out[i], want[i])
		}
	}
	if direct == 0 {
		t.Errorf("direct items: got 0, want some (the test would not exercise the direct path)")
	}
}

// TestQueueDirectEnd checks that Emit reports false when the direct path finds the stream ended.
func TestQueueDirectEnd(t *testing.T) {
	q := streamctl.NewQueue(nil, "")
	q.SetDirect(func(streamctl.Item) bool { return false })
	if q.Emit(context.Background(), streamctl.Item{Data: []byte("x")}) {
		t.Errorf("emit: got true, want false")
	}
}
