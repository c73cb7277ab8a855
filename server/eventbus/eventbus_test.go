package eventbus

import "testing"

func TestPublishReachesEverySubscriberInOrder(t *testing.T) {
	b := New[int]()
	a, c := b.Subscribe(10), b.Subscribe(10)
	b.Publish(1, 2, 3)
	for _, s := range []*Subscription[int]{a, c} {
		for want := 1; want <= 3; want++ {
			if got := <-s.C(); got != want {
				t.Fatalf("got %d, want %d", got, want)
			}
		}
	}
}

func TestFullSubscriberIsLaggedAndDoesNotBlock(t *testing.T) {
	b := New[int]()
	slow, fast := b.Subscribe(2), b.Subscribe(100)
	for i := 0; i < 50; i++ {
		b.Publish(i) // must not block on slow
	}
	select {
	case <-slow.Lagged():
	default:
		t.Fatal("slow subscriber not marked lagged")
	}
	if got := len(fast.C()); got != 50 {
		t.Fatalf("fast subscriber got %d values, want 50", got)
	}
	if got := b.Subscribers(); got != 1 {
		t.Fatalf("got %d subscribers after lag, want 1", got)
	}
	fast.Close()
	if got := b.Subscribers(); got != 0 {
		t.Fatalf("got %d subscribers after close, want 0", got)
	}
}
