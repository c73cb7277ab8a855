package dispatch

import "github.com/eventgate/eventgate/ent"

// Bounds of the coordinator's event cache: enough for the events of every claimed delivery many
// times over, and little memory even for large payloads.
const (
	eventCacheSize  = 4096
	eventCacheBytes = 32 << 20
)

// eventCache keeps recently loaded events by row id, so that an event going to several webhooks
// is read once rather than once per claim. Stored events never change, so an entry cannot go
// stale; a deleted event's deliveries are deleted with it, and recording them then finds no row.
// It evicts the oldest entries first. Only the coordinator goroutine uses it.
type eventCache struct {
	byID       map[int]*ent.Event
	order      []int // ids in insertion order; a ring of len maxEntries
	head, n    int   // index of the oldest id, and how many are held
	bytes      int
	maxEntries int
	maxBytes   int
}

func newEventCache(maxEntries, maxBytes int) eventCache {
	return eventCache{byID: make(map[int]*ent.Event, maxEntries), order: make([]int, maxEntries), maxEntries: maxEntries, maxBytes: maxBytes}
}

// get returns the cached event with row id id, or nil.
func (c *eventCache) get(id int) *ent.Event { return c.byID[id] }

// put keeps e, evicting the oldest events while the cache is over either bound. An event larger
// than the byte bound is not kept.
func (c *eventCache) put(e *ent.Event) {
	size := eventSize(e)
	if size > c.maxBytes {
		return
	}
	if _, ok := c.byID[e.ID]; ok {
		return
	}
	for c.n > 0 && (c.n == c.maxEntries || c.bytes+size > c.maxBytes) {
		c.evictOldest()
	}
	c.order[(c.head+c.n)%c.maxEntries] = e.ID
	c.n++
	c.byID[e.ID] = e
	c.bytes += size
}

func (c *eventCache) evictOldest() {
	id := c.order[c.head]
	c.head = (c.head + 1) % c.maxEntries
	c.n--
	if e := c.byID[id]; e != nil {
		c.bytes -= eventSize(e)
		delete(c.byID, id)
	}
}

// eventSize approximates the memory an event holds.
func eventSize(e *ent.Event) int {
	return len(e.Payload) + len(e.EventID) + len(e.Type) + 256
}
