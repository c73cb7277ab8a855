// Package streamctl is the contract between subscription resolvers and eventgate's streaming
// transports (WebSocket and SSE). Through the operation's context a resolver tells the transport
// where it starts, and, before it hands over each item, the item's position and whether it is
// replay (stored history, sent at the client's pace) or live (dropped with SLOW_CONSUMER when the
// client cannot keep up). The transport uses the cursor of the last item it actually sent when it
// ends a slow subscription, so the client resumes with `after` and misses nothing.
//
// It also lets identical subscriptions share work: the transport renders an item once per
// distinct operation (same document and variables) and keeps the encoded response payload in a
// RenderCache; a
// resolver that finds an item already rendered hands the bytes over in the Item instead of
// sending the value through gqlgen, which then executes nothing for that subscriber.
package streamctl

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Item describes one value a subscription resolver emits.
type Item struct {
	// Cursor is the log position of the item ("" for items without one).
	Cursor string
	// Replay is true for stored history: the transport waits for queue space instead of
	// dropping the subscription.
	Replay bool
	// Key identifies the item for the render cache (0: not cacheable).
	Key int64
	// Data is the item's rendering when the resolver found it in the cache (opaque bytes: the
	// transport's encoded response payload); the resolver then does not send the value on its
	// channel.
	Data []byte
}

// Tracker receives what a subscription resolver reports. Transports implement it.
type Tracker interface {
	// Start records the position a subscription starts from; it also tells the transport
	// that the resolver reports its items (and will call End).
	Start(cursor string)
	// Emit hands over the description of the next item. It waits until the transport takes it
	// and reports false when ctx ended first.
	Emit(ctx context.Context, it Item) bool
	// Rendered returns the cached rendering of the item with key. While another subscriber
	// of the same operation is rendering it, it waits for that (briefly). When it reports
	// none, the item is the caller's to render: emit it without Data.
	Rendered(key int64) ([]byte, bool)
	// End says no more items follow (call it before closing the resolver's channel).
	End()
}

type trackerKey struct{}

// WithTracker returns a context whose subscription resolver reports to t.
func WithTracker(ctx context.Context, t Tracker) context.Context {
	return context.WithValue(ctx, trackerKey{}, t)
}

// From returns the tracker a transport put in ctx, or one that tracks nothing. A resolver that
// reports many items looks it up once: by then ctx is a long chain of values, and every lookup
// walks it.
func From(ctx context.Context) Tracker {
	if t, ok := ctx.Value(trackerKey{}).(Tracker); ok {
		return t
	}
	return untracked{}
}

// untracked is the Tracker of a resolver no transport listens to.
type untracked struct{}

func (untracked) Start(string) {}

func (untracked) Emit(ctx context.Context, _ Item) bool { return ctx.Err() == nil }

func (untracked) Rendered(int64) ([]byte, bool) { return nil, false }

func (untracked) End() {}

// Start reports a subscription's starting cursor to the transport, if one listens. A resolver
// that calls it must call End on every path afterwards, panics and errors included: the
// transport counts the operation as running until End, and waits for it when the connection or
// the server shuts down.
func Start(ctx context.Context, cursor string) { From(ctx).Start(cursor) }

// Emit reports an item to the transport, if one listens; false means ctx ended.
func Emit(ctx context.Context, it Item) bool { return From(ctx).Emit(ctx, it) }

// Rendered looks an item up in the transport's render cache, as Tracker.Rendered does: when it
// reports none, the caller has the item to render and must emit it next, without Data (the
// other subscribers of the operation wait for that rendering).
func Rendered(ctx context.Context, key int64) ([]byte, bool) {
	if key == 0 {
		return nil, false
	}
	return From(ctx).Rendered(key)
}

// End reports the end of the items.
func End(ctx context.Context) { From(ctx).End() }

// Queue is the Tracker transports use: it hands items over one at a time, in emit order, to
// a consumer goroutine that exists only while an item is in its hands (see SetConsumer), or to
// the emitter's own goroutine for items that need no execution (see SetDirect).
type Queue struct {
	items     chan Item
	cache     *RenderCache
	operation opKey

	mu      sync.Mutex
	start   string
	started bool
	// direct, when set, takes live pre-rendered items in the emitter's goroutine.
	direct func(Item) bool
	// consume, when set, takes every other item, on a goroutine of the queue's.
	consume func(Item) bool
	// ended is called once End was called and no consumer runs any more.
	ended func()
	// pending counts items emitted for the consumer and not yet consumed: while any is, a
	// direct item would overtake it, so it goes to the consumer too.
	pending int
	// consuming is set while a consumer goroutine runs; it ends when nothing is pending.
	consuming bool
	// stopped is set once consume reported the stream over: later items are refused.
	stopped   bool
	endCalled bool
	endFired  bool
}

// NewQueue makes a Queue. With cache set, items are looked up in it under the operation's
// fingerprint (see RenderCache).
func NewQueue(cache *RenderCache, operation string) *Queue {
	q := &Queue{items: make(chan Item), cache: cache}
	if cache != nil {
		q.operation = cache.opKey(operation)
	}
	return q
}

// Start implements Tracker.
func (q *Queue) Start(cursor string) {
	q.mu.Lock()
	q.start, q.started = cursor, true
	q.mu.Unlock()
}

// Started reports whether the resolver called Start (and so reports items and End).
func (q *Queue) Started() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.started
}

// StartCursor returns the cursor given to Start.
func (q *Queue) StartCursor() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.start
}

// SetDirect makes Emit hand live items that carry Data to f, in the emitter's goroutine,
// when no earlier item is still with the consumer: such an item needs no execution, so it
// skips the hand-over to another goroutine (one goroutine switch per frame less). f reports
// false when the stream has ended; Emit then reports false too. Call it before the resolver
// runs.
func (q *Queue) SetDirect(f func(Item) bool) {
	q.mu.Lock()
	q.direct = f
	q.mu.Unlock()
}

// SetConsumer makes the queue hand every item that does not go direct to consume, one at a
// time and in emit order, on a goroutine the queue starts when such an item comes and that
// ends as soon as none is pending: an idle subscription has no goroutine of its own. Emit
// waits until consume has taken the item, so the resolver never runs ahead of it. consume
// reports false when the stream is over; later items are then refused. ended is called once,
// after End, when no consume call is running. Items emitted before SetConsumer wait for it.
func (q *Queue) SetConsumer(ctx context.Context, consume func(Item) bool, ended func()) {
	q.mu.Lock()
	q.consume, q.ended = consume, ended
	spawn := q.pending > 0 && !q.consuming
	if spawn {
		q.consuming = true
	}
	fire := q.endDueLocked()
	q.mu.Unlock()
	if spawn {
		go q.consumeLoop(ctx)
	}
	if fire {
		ended()
	}
}

// endDueLocked reports (once) that ended must be called now.
func (q *Queue) endDueLocked() bool {
	if !q.endCalled || q.consuming || q.ended == nil || q.endFired {
		return false
	}
	q.endFired = true
	return true
}

// Emit implements Tracker.
func (q *Queue) Emit(ctx context.Context, it Item) bool {
	done := ctx.Done()
	if closed(done) {
		q.unclaim(it)
		return false
	}
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		q.unclaim(it)
		return false
	}
	if it.Data != nil && !it.Replay && q.direct != nil && q.pending == 0 {
		direct := q.direct
		q.mu.Unlock()
		// pending is 0 and the resolver emits from one goroutine, so nothing is in flight
		// that this item could overtake.
		return direct(it) && !closed(done)
	}
	q.pending++
	spawn := q.consume != nil && !q.consuming
	if spawn {
		q.consuming = true
	}
	q.mu.Unlock()
	if spawn {
		go q.consumeLoop(ctx)
	}
	select {
	case q.items <- it:
		return true
	case <-done:
		q.mu.Lock()
		q.pending--
		q.mu.Unlock()
		q.unclaim(it)
		return false
	}
}

// closed reports whether done is closed, without waiting.
func closed(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// consumeLoop hands items to consume until none is pending or ctx ends.
func (q *Queue) consumeLoop(ctx context.Context) {
	for {
		select {
		case it := <-q.items:
			ok := q.consume(it)
			q.unclaim(it)
			q.mu.Lock()
			q.pending--
			if !ok {
				q.stopped = true
			}
			if q.pending > 0 {
				q.mu.Unlock()
				continue
			}
		case <-ctx.Done():
			q.mu.Lock()
		}
		q.consuming = false
		fire := q.endDueLocked()
		q.mu.Unlock()
		if fire {
			q.ended()
		}
		return
	}
}

// Rendered implements Tracker.
func (q *Queue) Rendered(key int64) ([]byte, bool) {
	if q.cache == nil {
		return nil, false
	}
	return q.cache.await(q.operation, key, q)
}

// unclaim gives up the queue's claim to render it (see RenderCache.await), once the item has
// been consumed or refused: when it was rendered, Store already settled the claim.
func (q *Queue) unclaim(it Item) {
	if q.cache != nil && it.Key != 0 && it.Data == nil {
		q.cache.unclaim(q.operation, it.Key, q)
	}
}

// End implements Tracker.
func (q *Queue) End() {
	q.mu.Lock()
	q.endCalled = true
	fire := q.endDueLocked()
	q.mu.Unlock()
	if fire {
		q.ended()
	}
}

// Store keeps an item's rendering for the other subscribers of the same operation.
func (q *Queue) Store(key int64, data []byte) {
	if q.cache != nil && key != 0 {
		q.cache.put(q.operation, key, data)
	}
}

// RenderCache holds recently rendered items per operation fingerprint, bounded in entries and in
// bytes (payloads reach 256 KiB, so a count alone could hold a gigabyte).
//
// Every subscriber of an operation looks every item up at about the same moment, from both
// CPUs: lookups take no lock (a read-write mutex's reader count alone, written by every lookup,
// kept a cache line bouncing between the cores). And when several subscribers find an item
// missing at once, one renders it and the others wait for its rendering instead of each
// executing the operation (see await).
type RenderCache struct {
	m      sync.Map // renderKey → *rendering
	claims sync.Map // renderKey → *claim: an item being rendered
	// seed hashes fingerprints: a queue hashes its operation's once, and lookups hash only
	// the two numbers of a renderKey, not a fingerprint as long as the query.
	seed maphash.Seed

	mu         sync.Mutex // serialises Put's bookkeeping
	maxEntries int
	maxBytes   int
	order      []renderKey // oldest first
	bytes      int
}

// opKey is an operation's fingerprint with its hash.
type opKey struct {
	name string
	hash uint64
}

func (c *RenderCache) opKey(operation string) opKey {
	return opKey{operation, maphash.String(c.seed, operation)}
}

// renderKey is where an item's rendering is kept. Two operations whose fingerprints hash alike
// share keys; the rendering says whose it is (see get), so they only miss each other's.
type renderKey struct {
	operation uint64
	key       int64
}

type rendering struct {
	operation string
	data      []byte
}

// claim marks an item one subscriber is rendering; done is closed when it is stored or given up.
type claim struct {
	owner *Queue
	done  chan struct{}
}

// renderCacheBytes bounds the bytes a RenderCache holds.
const renderCacheBytes = 32 << 20

// renderWait bounds how long a subscriber waits for another one's rendering before it renders
// the item itself: a rendering takes tens of microseconds, unless its renderer waits for a CPU.
const renderWait = 20 * time.Millisecond

// NewRenderCache makes a cache of at most max renderings and 32 MiB (oldest dropped first).
func NewRenderCache(max int) *RenderCache {
	return &RenderCache{maxEntries: max, maxBytes: renderCacheBytes, seed: maphash.MakeSeed()}
}

// Get returns a rendering.
func (c *RenderCache) Get(operation string, key int64) ([]byte, bool) {
	return c.get(c.opKey(operation), key)
}

func (c *RenderCache) get(op opKey, key int64) ([]byte, bool) {
	v, ok := c.m.Load(renderKey{op.hash, key})
	if !ok {
		return nil, false
	}
	r := v.(*rendering)
	if r.operation != op.name {
		return nil, false
	}
	return r.data, true
}

// await returns the rendering of an item. When it is missing and nobody renders it, owner
// claims it and await reports none: owner renders it, and Put or unclaim settles the claim.
// When another queue holds the claim, await waits for the rendering, at most renderWait; if it
// still is not there (the renderer failed, or is slow), the caller renders it too, unclaimed.
func (c *RenderCache) await(op opKey, key int64, owner *Queue) ([]byte, bool) {
	k := renderKey{op.hash, key}
	if data, ok := c.get(op, key); ok {
		return data, true
	}
	mine := &claim{owner: owner, done: make(chan struct{})}
	v, claimed := c.claims.LoadOrStore(k, mine)
	if !claimed {
		// Claimed: unless it was stored between the lookup and the claim.
		if data, ok := c.get(op, key); ok {
			c.settle(k, mine)
			return data, true
		}
		return nil, false
	}
	other := v.(*claim)
	if other.owner == owner {
		return nil, false // its own claim, from an emit that did not get through
	}
	timer := time.NewTimer(renderWait)
	select {
	case <-other.done:
	case <-timer.C:
	}
	timer.Stop()
	return c.get(op, key)
}

// unclaim settles owner's claim on an item, if it holds one.
func (c *RenderCache) unclaim(op opKey, key int64, owner *Queue) {
	k := renderKey{op.hash, key}
	if v, ok := c.claims.Load(k); ok && v.(*claim).owner == owner {
		c.settle(k, v.(*claim))
	}
}

// settle ends a claim and wakes its waiters; whoever removes the claim closes it, once.
func (c *RenderCache) settle(k renderKey, cl *claim) {
	if c.claims.CompareAndDelete(k, cl) {
		close(cl.done)
	}
}

// Put stores a copy of data and wakes the subscribers waiting for it. A rendering over 1/64 of
// the byte budget is not kept: sharing it would push out many others.
func (c *RenderCache) Put(operation string, key int64, data []byte) {
	c.put(c.opKey(operation), key, data)
}

func (c *RenderCache) put(op opKey, key int64, data []byte) {
	k := renderKey{op.hash, key}
	if len(data) <= c.maxBytes/64 {
		c.store(k, op.name, data)
	}
	if v, ok := c.claims.Load(k); ok {
		c.settle(k, v.(*claim))
	}
}

func (c *RenderCache) store(k renderKey, operation string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m.Load(k); ok {
		return // stored already, or a rendering of a colliding operation that stays
	}
	cp := append([]byte(nil), data...)
	c.m.Store(k, &rendering{operation, cp})
	c.order = append(c.order, k)
	c.bytes += len(cp)
	for len(c.order) > c.maxEntries || c.bytes > c.maxBytes {
		old := c.order[0]
		c.order = c.order[1:]
		if v, ok := c.m.LoadAndDelete(old); ok {
			c.bytes -= len(v.(*rendering).data)
		}
	}
}
