// Package gctune keeps the garbage collector from running too often while the live heap is
// small. With the default GOGC=100 the runtime collects whenever the heap has grown by as much
// as is live; a process with a small live heap and a high allocation rate (the dispatcher
// draining deliveries: ≈ 20 MB live, a few kilobytes per delivery) then spends a large share of
// its CPU in the collector. Run raises GOGC while the live heap is under a floor, so the heap
// may grow by the floor before a collection, and gives GOGC=100 back once the live heap passes
// it: a large heap (10,000 subscriptions) is collected exactly as by default.
package gctune

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// DefaultFloor is the heap growth allowed between collections while the live heap is smaller.
const DefaultFloor = 64 << 20

// maxPercent bounds the GOGC Run sets: a nearly empty heap must not grow without bound.
const maxPercent = 1000

// interval is how often Run looks at the live heap.
const interval = 250 * time.Millisecond

// Percent is the GOGC for a live heap of live bytes: 100, or more while live is under floor so
// that a collection waits until the heap has grown by floor.
func Percent(live, floor uint64) int {
	if live >= floor {
		return 100
	}
	if live == 0 {
		return maxPercent
	}
	return int(min(floor*100/live, maxPercent))
}

// Run adjusts GOGC to Percent of the live heap until ctx is done, then restores the setting it
// found. Call it only when the user has not set GOGC.
func Run(ctx context.Context, floor uint64) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := debug.SetGCPercent(100)
	defer debug.SetGCPercent(current)
	current = 100
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			// Only changes of a tenth or more: each call re-paces the collector.
			if p := Percent(sample[0].Value.Uint64(), floor); p*10 < current*9 || p*10 > current*11 {
				debug.SetGCPercent(p)
				current = p
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
