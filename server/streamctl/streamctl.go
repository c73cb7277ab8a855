// Package streamctl is the contract between subscription resolvers and eventgate's streaming
// transports (WebSocket and SSE). A resolver tells the transport, through the operation's
// context, the position of each item before it hands the item over, and whether the item is
// replay (stored history, sent at the client's pace) or live (dropped with SLOW_CONSUMER when
// the client cannot keep up). The transport uses the cursor of the last item it actually sent
// when it ends a slow subscription, so the client can resume with `after` and miss nothing.
package streamctl

import (
	"context"
	"sync"
)

// Item describes one value a subscription resolver is about to emit.
type Item struct {
	// Cursor is the log position of the item ("" for items without one).
	Cursor string
	// Replay is true for stored history: the transport waits for queue space instead of
	// dropping the subscription.
	Replay bool
}

// Tracker receives item descriptions in emit order. Transports implement it.
type Tracker interface {
	// Start records the position a subscription starts from (its resume point until
	// the first item is sent).
	Start(cursor string)
	// Emit is called once per item, before the item is sent on the resolver's channel.
	Emit(Item)
}

type trackerKey struct{}

// WithTracker returns a context whose subscription resolver reports to t.
func WithTracker(ctx context.Context, t Tracker) context.Context {
	return context.WithValue(ctx, trackerKey{}, t)
}

// Start reports a subscription's starting cursor to the transport, if one listens.
func Start(ctx context.Context, cursor string) {
	if t, ok := ctx.Value(trackerKey{}).(Tracker); ok {
		t.Start(cursor)
	}
}

// Emit reports an item to the transport, if one listens.
func Emit(ctx context.Context, it Item) {
	if t, ok := ctx.Value(trackerKey{}).(Tracker); ok {
		t.Emit(it)
	}
}

// Queue is a Tracker that keeps the reported items in order, for a transport to pair them with
// the responses it receives (one response per item, in the same order).
type Queue struct {
	mu    sync.Mutex
	start string
	items []Item
}

// Start implements Tracker.
func (q *Queue) Start(cursor string) {
	q.mu.Lock()
	q.start = cursor
	q.mu.Unlock()
}

// Emit implements Tracker.
func (q *Queue) Emit(it Item) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
}

// StartCursor returns the cursor given to Start.
func (q *Queue) StartCursor() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.start
}

// Next pops the description of the next response. ok is false when the resolver reported none
// (a response that is not an item, such as an error).
func (q *Queue) Next() (it Item, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return Item{}, false
	}
	it = q.items[0]
	q.items[0] = Item{}
	q.items = q.items[1:]
	return it, true
}
