// Package eventbus fans values out to in-process subscribers without ever blocking the
// publisher. The bus keeps the latest values in one ring shared by all subscribers; each
// subscriber is only told that something new is there and pulls it from the ring at its own
// pace, so an idle subscription costs a few words instead of a buffer of its own. A subscriber
// that falls more than its size values behind is lagged and receives nothing more, so it can fall
// back to the durable log (events) or end (live-only streams). A PostgreSQL LISTEN/NOTIFY relay
// feeds the same Bus on every instance.
package eventbus

import (
	"runtime"
	"sync"
)

// Bus is a topic of values of type T.
type Bus[T any] struct {
	mu   sync.RWMutex
	subs map[*Subscription[T]]struct{}
	// ring holds the latest values: value number n (counting from 0) is at n % len(ring).
	// Its length is a power of two at least the largest size subscribed with, so a subscriber
	// that is not lagged always finds its next value there.
	ring []T
	// head is how many values have been published.
	head uint64
	// kept is the number of the oldest value the ring still holds; older slots are cleared so
	// that values every subscriber has read are not kept alive. Clearing happens at Publish, so
	// the last batch stays until the next one: at most len(ring) values on a quiet bus.
	kept uint64

	// Telling many subscribers is left to a waker goroutine, which runs while there is
	// telling to do (see tell).
	wakeMu  sync.Mutex
	waking  bool // a waker runs and will make another pass if again is set
	again   bool
	pending []*Subscription[T] // the waker's snapshot of subs, reused between passes
}

// wakeChunk is how many subscribers are told at a time: a publisher tells this many itself;
// the waker tells this many, then lets the goroutines they woke (and anything else runnable,
// such as the next publish request) run before it tells more.
const wakeChunk = 1024

// New makes an empty Bus.
func New[T any]() *Bus[T] {
	return &Bus[T]{subs: map[*Subscription[T]]struct{}{}}
}

// Subscription receives the values published after it was made.
type Subscription[T any] struct {
	bus   *Bus[T]
	size  uint64
	ready chan struct{} // capacity 1: something was published since Next last ran dry
	// next is the number of the next value to read; written by the subscriber under the
	// bus's read lock, read by the publisher under its write lock.
	next uint64
}

// Subscribe registers a subscriber that may fall at most size values behind.
func (b *Bus[T]) Subscribe(size int) *Subscription[T] {
	size = max(size, 1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if size > len(b.ring) {
		b.growLocked(size)
	}
	s := &Subscription[T]{bus: b, size: uint64(size), ready: make(chan struct{}, 1), next: b.head}
	b.subs[s] = struct{}{}
	return s
}

// growLocked makes the ring hold at least size values, keeping the ones it holds.
func (b *Bus[T]) growLocked(size int) {
	n := 1
	for n < size {
		n *= 2
	}
	ring := make([]T, n)
	for i := b.kept; i < b.head; i++ {
		ring[i%uint64(n)] = b.ring[i%uint64(len(b.ring))]
	}
	b.ring = ring
}

// Publish appends values to the ring and tells every subscriber. It never waits for them: a
// subscriber that does not read in time finds itself lagged.
func (b *Bus[T]) Publish(values ...T) {
	if len(values) == 0 {
		return
	}
	b.mu.Lock()
	if len(b.ring) == 0 {
		b.growLocked(1)
	}
	n := uint64(len(b.ring))
	for _, v := range values {
		b.ring[b.head%n] = v
		b.head++
	}
	// Clear what nobody will read any more: older than every subscriber's next value (a
	// lagged subscriber reads nothing, so the ring's length bounds what it holds up).
	var oldest uint64
	if b.head > n {
		oldest = b.head - n
	}
	low := b.head
	for s := range b.subs {
		low = min(low, max(s.next, oldest))
	}
	var zero T
	// Slots before oldest were overwritten by this publish: nothing to clear there.
	for b.kept = max(b.kept, oldest); b.kept < low; b.kept++ {
		b.ring[b.kept%n] = zero
	}
	few := len(b.subs) <= wakeChunk
	b.mu.Unlock()
	if few {
		b.mu.RLock()
		for s := range b.subs {
			s.tell()
		}
		b.mu.RUnlock()
		return
	}
	b.tellMany()
}

// tellMany has the waker tell every subscriber, starting one when none runs. With thousands of
// subscribers, telling them all at once would put thousands of goroutines in the scheduler's
// queue, which runs them first come first served: the next publish request, and whatever else
// eventgate does, would wait until every one of them had run. The waker tells them a chunk at a
// time and yields between chunks, so other work gets through in the meantime; a subscriber not
// yet told when the next value comes takes both in one go.
func (b *Bus[T]) tellMany() {
	b.wakeMu.Lock()
	if b.waking {
		b.again = true
		b.wakeMu.Unlock()
		return
	}
	b.waking = true
	b.wakeMu.Unlock()
	go b.wake()
}

// wake is the waker: it makes passes over the subscribers until no publish asked for another.
func (b *Bus[T]) wake() {
	for {
		b.mu.RLock()
		pending := b.pending[:0]
		for s := range b.subs {
			pending = append(pending, s)
		}
		b.mu.RUnlock()
		for i, s := range pending {
			s.tell()
			if (i+1)%wakeChunk == 0 {
				runtime.Gosched()
			}
		}
		clear(pending) // closed subscriptions are not kept alive
		b.wakeMu.Lock()
		b.pending = pending[:0]
		if !b.again {
			b.waking = false
			b.wakeMu.Unlock()
			return
		}
		b.again = false
		b.wakeMu.Unlock()
	}
}

// tell signals the subscriber that something was published.
func (s *Subscription[T]) tell() {
	select {
	case s.ready <- struct{}{}:
	default: // already told
	}
}

// Subscribers reports how many subscriptions are open.
func (b *Bus[T]) Subscribers() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}

// Ready receives a signal when values may have been published since Next last reported none.
func (s *Subscription[T]) Ready() <-chan struct{} { return s.ready }

// Next returns the next value, in publish order; ok is false when there is none yet. lagged
// reports that the subscriber fell more than its size values behind: it missed values and
// gets none any more.
func (s *Subscription[T]) Next() (v T, ok, lagged bool) {
	var one [1]T
	n, lagged := s.NextBatch(one[:])
	return one[0], n == 1, lagged
}

// NextBatch reads up to len(buf) values into buf, in publish order, with one lock for all of
// them; lagged as for Next (then n is 0).
func (s *Subscription[T]) NextBatch(buf []T) (n int, lagged bool) {
	b := s.bus
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.head-s.next > s.size {
		return 0, true
	}
	for n < len(buf) && s.next < b.head {
		buf[n] = b.ring[s.next%uint64(len(b.ring))]
		s.next++
		n++
	}
	return n, false
}

// Close unregisters the subscription.
func (s *Subscription[T]) Close() {
	s.bus.mu.Lock()
	delete(s.bus.subs, s)
	s.bus.mu.Unlock()
}
