package dispatch

import "sync"

// resultInbox is where jobs leave their results for the coordinator. It wakes the coordinator
// only when a batch begins (to start the record timer) and when it holds recordBatch results:
// a wake per result, as a channel gives, cost the coordinator a round of the scheduler per
// delivery while it only waited for the batch to fill.
type resultInbox struct {
	mu    sync.Mutex
	items []result
	ready chan struct{} // capacity 1: a pending wake
}

func newResultInbox() *resultInbox {
	return &resultInbox{ready: make(chan struct{}, 1)}
}

// put leaves r for the coordinator. It never blocks.
func (b *resultInbox) put(r result) {
	b.mu.Lock()
	b.items = append(b.items, r)
	n := len(b.items)
	b.mu.Unlock()
	if n == 1 || n == recordBatch {
		select {
		case b.ready <- struct{}{}:
		default:
		}
	}
}

// len is how many results wait.
func (b *resultInbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items)
}

// takeAll appends the waiting results to dst and empties the inbox.
func (b *resultInbox) takeAll(dst []result) []result {
	b.mu.Lock()
	defer b.mu.Unlock()
	dst = append(dst, b.items...)
	clear(b.items)
	b.items = b.items[:0]
	return dst
}
