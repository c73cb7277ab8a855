package eventbus

import (
	"fmt"
	"testing"
	"time"
)

// drain reads what s has waiting.
func drain[T any](t *testing.T, s *Subscription[T]) (got []T, lagged bool) {
	t.Helper()
	for {
		v, ok, lag := s.Next()
		if lag {
			return got, true
		}
		if !ok {
			return got, false
		}
		got = append(got, v)
	}
}

func TestPublishReachesEverySubscriberInOrder(t *testing.T) {
	b := New[int]()
	a, c := b.Subscribe(10), b.Subscribe(10)
	b.Publish(1, 2, 3)
	for _, s := range []*Subscription[int]{a, c} {
		select {
		case <-s.Ready():
		default:
			t.Fatal("subscriber not told about the publish")
		}
		got, lagged := drain(t, s)
		if lagged || len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
			t.Fatalf("got %v (lagged %v), want [1 2 3]", got, lagged)
		}
	}
}

func TestSubscriberSeesOnlyLaterValues(t *testing.T) {
	b := New[int]()
	b.Publish(1, 2)
	s := b.Subscribe(4)
	b.Publish(3)
	if got, _ := drain(t, s); len(got) != 1 || got[0] != 3 {
		t.Fatalf("got %v, want [3]", got)
	}
}

func TestSubscriberKeepsUpAcrossManyRingTurns(t *testing.T) {
	b := New[int]()
	s := b.Subscribe(3)
	var got []int
	for i := range 100 {
		b.Publish(i)
		vals, lagged := drain(t, s)
		if lagged {
			t.Fatalf("lagged at %d although it read every value", i)
		}
		got = append(got, vals...)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("value %d is %d, want %d", i, v, i)
		}
	}
	if len(got) != 100 {
		t.Fatalf("got %d values, want 100", len(got))
	}
}

func TestFullSubscriberIsLaggedAndDoesNotBlock(t *testing.T) {
	b := New[int]()
	slow, fast := b.Subscribe(2), b.Subscribe(100)
	for i := range 50 {
		b.Publish(i) // must not block on slow
	}
	if _, lagged := drain(t, slow); !lagged {
		t.Fatal("slow subscriber not lagged")
	}
	got, lagged := drain(t, fast)
	if lagged || len(got) != 50 {
		t.Fatalf("fast subscriber got %d values (lagged %v), want 50", len(got), lagged)
	}
	slow.Close()
	fast.Close()
	if got := b.Subscribers(); got != 0 {
		t.Fatalf("got %d subscribers after close, want 0", got)
	}
}

func TestSubscriberExactlyAtItsSizeIsNotLagged(t *testing.T) {
	b := New[int]()
	s := b.Subscribe(4)
	b.Publish(1, 2, 3, 4)
	if got, lagged := drain(t, s); lagged || len(got) != 4 {
		t.Fatalf("got %v (lagged %v), want 4 values", got, lagged)
	}
	b.Publish(5, 6, 7, 8, 9)
	if _, lagged := drain(t, s); !lagged {
		t.Fatal("5 values behind with size 4: not lagged")
	}
}

func TestLargerSubscriptionGrowsTheRingWithoutLosingValues(t *testing.T) {
	b := New[int]()
	small := b.Subscribe(2)
	b.Publish(1, 2)
	big := b.Subscribe(8)
	b.Publish(3, 4, 5, 6, 7, 8, 9, 10)
	if got, lagged := drain(t, big); lagged || len(got) != 8 || got[0] != 3 || got[7] != 10 {
		t.Fatalf("big got %v (lagged %v), want 3…10", got, lagged)
	}
	if _, lagged := drain(t, small); !lagged {
		t.Fatal("small subscriber 10 values behind with size 2: not lagged")
	}
}

func TestReadValuesAreNotKeptAlive(t *testing.T) {
	b := New[*int]()
	s := b.Subscribe(4)
	v := 1
	b.Publish(&v)
	drain(t, s)
	b.Publish(nil) // publishing clears what every subscriber read
	for i, slot := range b.ring {
		if slot == &v {
			t.Fatalf("slot %d still holds a value every subscriber read", i)
		}
	}
}

func TestConcurrentReadersSeeOrderedValuesOrLag(t *testing.T) {
	b := New[int]()
	const values = 5000
	done := make(chan error, 4)
	for range 4 {
		s := b.Subscribe(64)
		go func() {
			want := 0
			for want < values {
				<-s.Ready()
				for {
					v, ok, lagged := s.Next()
					if lagged {
						done <- nil // allowed: it fell behind
						return
					}
					if !ok {
						break
					}
					if v != want {
						done <- fmt.Errorf("got %d, want %d", v, want)
						return
					}
					want++
				}
			}
			done <- nil
		}()
	}
	for i := range values {
		b.Publish(i)
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestManySubscribersAreAllTold checks the waker: with more subscribers than a publisher tells
// itself, every one is told of every publish, including publishes made while the waker is still
// telling the others about an earlier one, and each reads every value in order.
func TestManySubscribersAreAllTold(t *testing.T) {
	b := New[int]()
	subs := make([]*Subscription[int], 3*wakeChunk+1)
	for i := range subs {
		subs[i] = b.Subscribe(100)
	}
	got := make([][]int, len(subs))
	for round := range 3 {
		// Two publishes back to back: the second comes while the waker tells about the first.
		b.Publish(2 * round)
		b.Publish(2*round + 1)
		for i, s := range subs {
			for len(got[i]) < 2*round+2 {
				select {
				case <-s.Ready():
				case <-time.After(5 * time.Second):
					t.Fatalf("round %d: subscriber %d has %v and was not told of more", round, i, got[i])
				}
				vals, lagged := drain(t, s)
				if lagged {
					t.Fatalf("subscriber %d lagged", i)
				}
				got[i] = append(got[i], vals...)
			}
		}
	}
	for i, g := range got {
		if fmt.Sprint(g) != "[0 1 2 3 4 5]" {
			t.Fatalf("subscriber %d got %v, want [0 1 2 3 4 5]", i, g)
		}
	}
}

func TestNextBatchReadsInOrderAndReportsLag(t *testing.T) {
	b := New[int]()
	s := b.Subscribe(8)
	b.Publish(1, 2, 3, 4, 5)
	buf := make([]int, 3)
	var got []int
	for {
		n, lagged := s.NextBatch(buf)
		if lagged {
			t.Fatal("lagged although within its size")
		}
		if n == 0 {
			break
		}
		got = append(got, buf[:n]...)
	}
	if fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("got %v, want [1 2 3 4 5]", got)
	}
	for i := range 9 {
		b.Publish(i)
	}
	if n, lagged := s.NextBatch(buf); !lagged || n != 0 {
		t.Fatalf("after 9 values with size 8: got n=%d lagged=%v, want lagged", n, lagged)
	}
}
