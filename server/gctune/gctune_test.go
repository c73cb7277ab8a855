package gctune

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const floor = 64 << 20
	tests := []struct {
		live uint64
		want int
	}{
		{0, maxPercent},
		{1 << 20, maxPercent}, // 6400 % capped
		{16 << 20, 400},       // grows by the floor before a collection
		{32 << 20, 200},       //
		{64 << 20, 100},       // at the floor: the default
		{512 << 20, 100},      // a large heap is collected as by default
		{floor - 1, 100},      // just under: 100.000…, not less
	}
	for _, tc := range tests {
		if got := Percent(tc.live, floor); got != tc.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", tc.live>>20, got, tc.want)
		}
	}
}

// TestRunRaisesAndRestoresGOGC runs the tuner with a floor far above this test's live heap: it
// must raise GOGC, and put back the setting it found when it stops.
func TestRunRaisesAndRestoresGOGC(t *testing.T) {
	before := debug.SetGCPercent(137)
	defer debug.SetGCPercent(before)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Run(ctx, 1<<40); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := gogc()
		if p == maxPercent {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d, want %d with a live heap far under the floor", p, maxPercent)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if p := gogc(); p != 137 {
		t.Errorf("after Run: GOGC %d, want the 137 it found", p)
	}
}

// gogc reads the current GOGC without changing it.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}
