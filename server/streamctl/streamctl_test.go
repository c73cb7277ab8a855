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
// the consumer is slow with the former (on goroutines that come and go): every item must come out exactly once, in emit order,
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
	consumed := 0
	q.SetConsumer(ctx, func(it streamctl.Item) bool {
		if consumed%7 == 0 {
			time.Sleep(50 * time.Microsecond) // a slow execution
		}
		consumed++
		record(it)
		return true
	}, func() { close(done) })
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

// TestQueueEndWaitsForTheConsumer: ended comes once, after End, and not while an item is
// still being consumed; items emitted before SetConsumer wait for it.
func TestQueueEndWaitsForTheConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	q := streamctl.NewQueue(nil, "")
	emitted := make(chan bool)
	go func() { emitted <- q.Emit(ctx, streamctl.Item{Cursor: "early"}) }()
	release := make(chan struct{})
	var got []string
	var ends int
	endedCh := make(chan struct{})
	var mu sync.Mutex
	q.SetConsumer(ctx, func(it streamctl.Item) bool {
		<-release
		mu.Lock()
		got = append(got, it.Cursor)
		mu.Unlock()
		return true
	}, func() {
		mu.Lock()
		ends++
		mu.Unlock()
		close(endedCh)
	})
	if !<-emitted {
		t.Fatal("emit before SetConsumer: got false, want true")
	}
	q.End()
	select {
	case <-endedCh:
		t.Fatal("ended while an item was still being consumed")
	default:
	}
	close(release)
	<-endedCh
	q.End()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "early" || ends != 1 {
		t.Fatalf("got items %v and %d ends, want [early] and 1", got, ends)
	}
}

// TestQueueConsumerStopRefusesLaterItems: once the consumer reports the stream over, Emit
// reports false, so the resolver stops.
func TestQueueConsumerStopRefusesLaterItems(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	q := streamctl.NewQueue(nil, "")
	q.SetConsumer(ctx, func(streamctl.Item) bool { return false }, func() {})
	q.SetDirect(func(streamctl.Item) bool { return true })
	if !q.Emit(ctx, streamctl.Item{Cursor: "1"}) {
		t.Fatal("first emit: got false, want true (the consumer took it)")
	}
	// The consumer's verdict is recorded when consume returns; the next emit may race it, the
	// one after cannot pass both.
	q.Emit(ctx, streamctl.Item{Cursor: "2"})
	if q.Emit(ctx, streamctl.Item{Cursor: "3"}) {
		t.Fatal("emit after the consumer stopped: got true, want false")
	}
}
