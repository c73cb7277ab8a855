// Package eventbus fans values out to in-process subscribers without ever blocking the
// publisher. Each subscriber has a bounded buffer; a subscriber that lets it fill is marked lagged
// and stops receiving, so it can fall back to the durable log (events) or end (live-only streams).
// A PostgreSQL LISTEN/NOTIFY relay feeds the same Bus on every instance.
package eventbus

import "sync"

// Bus is a topic of values of type T.
type Bus[T any] struct {
	mu   sync.RWMutex
	subs map[*Subscription[T]]struct{}
}

// New makes an empty Bus.
func New[T any]() *Bus[T] {
	return &Bus[T]{subs: map[*Subscription[T]]struct{}{}}
}

// Subscription receives the values published after it was made.
type Subscription[T any] struct {
	bus    *Bus[T]
	ch     chan T
	lagged chan struct{}
	once   sync.Once
}

// Subscribe registers a subscriber with a buffer of size values.
func (b *Bus[T]) Subscribe(size int) *Subscription[T] {
	s := &Subscription[T]{bus: b, ch: make(chan T, max(size, 1)), lagged: make(chan struct{})}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Publish hands v to every subscriber that has room; the others are marked lagged and dropped.
func (b *Bus[T]) Publish(values ...T) {
	b.mu.RLock()
	var full []*Subscription[T]
	for s := range b.subs {
		for _, v := range values {
			select {
			case s.ch <- v:
				continue
			default:
			}
			full = append(full, s)
			break
		}
	}
	b.mu.RUnlock()
	for _, s := range full {
		s.markLagged()
	}
}

// Subscribers reports how many subscriptions are open.
func (b *Bus[T]) Subscribers() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}

// C delivers the values.
func (s *Subscription[T]) C() <-chan T { return s.ch }

// Lagged is closed when the subscriber missed a value because its buffer was full.
// No more values are delivered after that.
func (s *Subscription[T]) Lagged() <-chan struct{} { return s.lagged }

// Close unregisters the subscription.
func (s *Subscription[T]) Close() {
	s.bus.mu.Lock()
	delete(s.bus.subs, s)
	s.bus.mu.Unlock()
}

func (s *Subscription[T]) markLagged() {
	s.Close()
	s.once.Do(func() { close(s.lagged) })
}
