package substream

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eventgate/eventgate/server/streamctl"
)

// pushLive pushes live frames c1..cn and fails on any error.
func pushLive(t *testing.T, q *Queue, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := q.Push(context.Background(), Frame{Data: []byte{byte(i)}, Cursor: fmt.Sprint("c", i)}, false); err != nil {
			t.Fatalf("push c%d: got %v, want nil", i, err)
		}
	}
}

func TestQueueOverflowEndsLiveStreamWithResumeCursor(t *testing.T) {
	tests := []struct {
		name       string
		start      string
		popped     int // frames the writer took before the overflow
		wantCursor string
	}{
		{name: "resume after last written", start: "c0", popped: 2, wantCursor: "c2"},
		{name: "nothing written: starting cursor", start: "c0", popped: 0, wantCursor: "c0"},
		{name: "nothing written, no start", start: "", popped: 0, wantCursor: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stats Stats
			q := NewQueue(4, &stats, nil)
			tracker := streamctl.NewQueue(nil, "")
			tracker.Start(tc.start)
			q.setTracker(tracker)
			pushLive(t, q, 1, 4)
			for range tc.popped {
				if _, st, _ := q.Pop(); st != Data {
					t.Fatalf("pop: got status %v, want Data", st)
				}
			}
			pushLive(t, q, 5, 4+tc.popped) // refill to the bound
			err := q.Push(context.Background(), Frame{Cursor: "overflow"}, false)
			if !errors.Is(err, ErrSlowConsumer) {
				t.Fatalf("push into full queue: got %v, want ErrSlowConsumer", err)
			}
			f, st, more := q.Pop()
			if st != Slow || more {
				t.Fatalf("pop after overflow: got status %v more %v, want Slow false", st, more)
			}
			if f.Cursor != tc.wantCursor {
				t.Errorf("resume cursor: got %q, want %q", f.Cursor, tc.wantCursor)
			}
			if err := q.Push(context.Background(), Frame{}, true); !errors.Is(err, ErrEnded) {
				t.Errorf("push after overflow: got %v, want ErrEnded", err)
			}
			if _, st, _ := q.Pop(); st != None {
				t.Errorf("pop after end: got %v, want None", st)
			}
			if got := stats.Peak(); got != 4 {
				t.Errorf("peak: got %d, want 4", got)
			}
			if got := stats.SlowConsumers(); got != 1 {
				t.Errorf("slow consumers: got %d, want 1", got)
			}
		})
	}
}

func TestQueueReplayWaitsForSpace(t *testing.T) {
	var stats Stats
	q := NewQueue(2, &stats, nil)
	ctx := context.Background()
	const total = 50
	errc := make(chan error, 1)
	go func() {
		for i := 1; i <= total; i++ {
			if err := q.Push(ctx, Frame{Cursor: fmt.Sprint("r", i)}, true); err != nil {
				errc <- err
				return
			}
		}
		q.Finish([]byte("done"))
		errc <- nil
	}()
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("got %d frames before the deadline, want %d", len(got), total)
		}
		f, st, _ := q.Pop()
		if st == Final {
			if string(f.Data) != "done" {
				t.Fatalf("final: got %q, want done", f.Data)
			}
			break
		}
		if st == Data {
			got = append(got, f.Cursor)
		}
		if st == Slow {
			t.Fatal("replay overflowed the queue")
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("push: %v", err)
	}
	if len(got) != total {
		t.Fatalf("got %d frames, want %d", len(got), total)
	}
	for i, c := range got {
		if want := fmt.Sprint("r", i+1); c != want {
			t.Fatalf("frame %d: got %s, want %s", i, c, want)
		}
	}
	if p := stats.Peak(); p > 2 {
		t.Errorf("peak: got %d, want at most 2", p)
	}
	if n := stats.SlowConsumers(); n != 0 {
		t.Errorf("slow consumers: got %d, want 0", n)
	}
}

func TestQueueAbortReleasesWaitingReplay(t *testing.T) {
	q := NewQueue(1, nil, nil)
	ctx := context.Background()
	if err := q.Push(ctx, Frame{Cursor: "a"}, true); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- q.Push(ctx, Frame{Cursor: "b"}, true) }()
	q.Abort([]byte("bye"))
	select {
	case err := <-errc:
		if !errors.Is(err, ErrEnded) {
			t.Fatalf("waiting push: got %v, want ErrEnded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiting push did not return after Abort")
	}
	f, st, more := q.Pop()
	if st != Final || string(f.Data) != "bye" || more {
		t.Fatalf("pop: got %v %q more %v, want Final \"bye\" false", st, f.Data, more)
	}
}

func TestQueueWakesOncePerSchedule(t *testing.T) {
	wakes := 0
	q := NewQueue(8, nil, func() { wakes++ })
	pushLive(t, q, 1, 3)
	if wakes != 1 {
		t.Fatalf("wakes after three pushes: got %d, want 1", wakes)
	}
	for i := 1; i <= 3; i++ {
		_, st, more := q.Pop()
		if st != Data || more != (i < 3) {
			t.Fatalf("pop %d: got %v more %v", i, st, more)
		}
	}
	q.Finish(nil)
	if wakes != 2 {
		t.Fatalf("wakes after Finish: got %d, want 2", wakes)
	}
	q.Finish([]byte("ignored"))
	f, st, _ := q.Pop()
	if st != Final || f.Data != nil {
		t.Fatalf("final: got %v %q, want Final nil", st, f.Data)
	}
	q.Abort([]byte("ignored"))
	if _, st, more := q.Pop(); st != None || more {
		t.Fatalf("after the end was taken, Abort sent %v", st)
	}
}

// TestAbortCutsAFinishedStreamShort: a client completes an operation whose stream finished but
// whose frames and complete are still queued; it gets nothing more for the id.
func TestAbortCutsAFinishedStreamShort(t *testing.T) {
	q := NewQueue(8, nil, func() {})
	pushLive(t, q, 1, 2)
	q.Finish([]byte("complete"))
	q.Abort(nil)
	f, st, more := q.Pop()
	if st != Final || f.Data != nil || more {
		t.Fatalf("after Abort: got %v %q more %v, want only a nil final", st, f.Data, more)
	}
}

func TestSlowConsumerError(t *testing.T) {
	e := SlowConsumerError("abc")
	if e.Extensions["code"] != CodeSlowConsumer || e.Extensions["cursor"] != "abc" {
		t.Errorf("extensions: got %v, want code %s cursor abc", e.Extensions, CodeSlowConsumer)
	}
	if c, ok := SlowConsumerError("").Extensions["cursor"]; !ok || c != nil {
		t.Errorf("empty cursor: got %v (present %v), want null", c, ok)
	}
}
