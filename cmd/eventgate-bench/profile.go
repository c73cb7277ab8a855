package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// profiler writes a CPU profile and a block profile (where goroutines waited: channels, locks,
// select) of each scenario's eventgate phase, and heap profiles, into dir. Block profiles are
// cumulative over the run; profile one scenario with -scenarios to read one alone.
// It only means something in-process (eventgate exposes no pprof endpoint), and then the
// profiles include the load generator: read them with -focus on eventgate's packages or
// -ignore on cmd/eventgate-bench. A nil profiler or an empty dir does nothing.
type profiler struct {
	dir  string
	log  *progress
	cur  *os.File
	name string
	// sched is the scheduler latency histogram when the profile started.
	sched *metrics.Float64Histogram
}

func (p *profiler) start(name string) {
	if p == nil || p.dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(p.dir, name+".cpu.pprof"))
	if err != nil {
		p.log.printf("profile %s: %v", name, err)
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		p.log.printf("profile %s: %v", name, err)
		return
	}
	p.cur = f
	p.name = name
	p.sched = schedLatencies()
	// Blocking events of 100 µs and more are all recorded; shorter ones proportionally.
	runtime.SetBlockProfileRate(int((100 * time.Microsecond).Nanoseconds()))
}

func (p *profiler) stop() {
	if p == nil || p.cur == nil {
		return
	}
	pprof.StopCPUProfile()
	if err := p.cur.Close(); err != nil {
		p.log.printf("profile: %v", err)
	}
	p.cur = nil
	if before, after := p.sched, schedLatencies(); before != nil && after != nil {
		p50, p99 := histogramDiffPercentiles(before, after)
		p.log.printf("%s: goroutines waited for a CPU (runnable, not running) p50 %v, p99 %v", p.name, p50, p99)
	}
	runtime.SetBlockProfileRate(0)
	f, err := os.Create(filepath.Join(p.dir, p.name+".block.pprof"))
	if err != nil {
		p.log.printf("block profile: %v", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("block").WriteTo(f, 0); err != nil {
		p.log.printf("block profile: %v", err)
	}
}

// heap writes the live heap after a collection (scenario 2: what the connections hold).
func (p *profiler) heap(name string) {
	if p == nil || p.dir == "" {
		return
	}
	runtime.GC()
	f, err := os.Create(filepath.Join(p.dir, name+".heap.pprof"))
	if err != nil {
		p.log.printf("heap profile %s: %v", name, err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		p.log.printf("heap profile %s: %v", name, err)
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	p.log.printf("%s: heap in use %d KiB, stacks %d KiB, goroutines %d", name, m.HeapInuse>>10, m.StackInuse>>10, runtime.NumGoroutine())
}

// schedLatencies reads the runtime's histogram of how long goroutines were runnable before they
// ran: when CPU is short or goroutines are many, every wake-up waits in the run queues.
func schedLatencies() *metrics.Float64Histogram {
	sample := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return sample[0].Value.Float64Histogram()
}

// histogramDiffPercentiles returns the p50 and p99 of the events recorded between two
// snapshots of one histogram (upper bucket bounds).
func histogramDiffPercentiles(before, after *metrics.Float64Histogram) (p50, p99 time.Duration) {
	counts := make([]uint64, len(after.Counts))
	var total uint64
	for i := range after.Counts {
		counts[i] = after.Counts[i] - before.Counts[i]
		total += counts[i]
	}
	at := func(q float64) time.Duration {
		want := uint64(math.Ceil(q * float64(total)))
		var seen uint64
		for i, c := range counts {
			seen += c
			if seen >= want && c > 0 {
				upper := after.Buckets[i+1]
				if math.IsInf(upper, 1) {
					upper = after.Buckets[i]
				}
				return time.Duration(upper * float64(time.Second))
			}
		}
		return 0
	}
	if total == 0 {
		return 0, 0
	}
	return at(0.5), at(0.99)
}
