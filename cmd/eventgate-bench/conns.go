package main

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// connsResult is what scenario 2 measured.
type connsResult struct {
	conns               int
	rssBefore, rssAfter int64 // KiB
	rssLoaded           int64 // KiB, at the end of the load phase
	perConnKiB          float64
	p50, p99, maxMS     float64
	samples             int
	achievedRate        float64
	publishP50          float64
	publishP99          float64
	expected            int64
	received            int64
	note                string
}

// runConns is scenario 2: many concurrent subscribed connections, a steady trickle of events:
// eventgate's RSS per connection and publish→receive latency. Every event carries its publish
// time ("sent_us", µs) in an extra payload key, which eventgate passes through.
func runConns(ctx context.Context, e *env) (connsResult, error) {
	o := e.opts
	res := connsResult{conns: o.conns}
	t, err := e.start(ctx)
	if err != nil {
		return res, err
	}
	defer e.stopTarget(t)
	// One request first, so that lazily built state (schema caches, pools) is not counted as
	// the connections' cost.
	if err := t.graphQL(ctx, `{ viewer { name } }`, nil, nil); err != nil {
		return res, err
	}
	if t.inProcess {
		runtime.GC()
	}
	if res.rssBefore, err = t.rssKiB(); err != nil {
		return res, err
	}

	e.log.printf("scenario 2: connecting %d subscribers", o.conns)
	began := time.Now()
	s, err := openSwarm(ctx, swarmConfig{url: wsURL(t.url), n: o.conns, token: t.token, latency: true, dialers: 64})
	if err != nil {
		return res, fmt.Errorf("subscribers: %w", err)
	}
	defer s.close()
	if err := settle(ctx, t, s); err != nil {
		return res, err
	}
	e.log.printf("scenario 2: %d subscriptions live after %v", o.conns, time.Since(began).Round(time.Millisecond))
	if t.inProcess {
		runtime.GC()
	}
	if res.rssAfter, err = t.rssKiB(); err != nil {
		return res, err
	}
	res.perConnKiB = float64(res.rssAfter-res.rssBefore) / float64(o.conns)
	e.prof.heap("2-conns")

	base := s.counts()
	events := int(o.connsRate * o.connsDuration.Seconds())
	e.log.printf("scenario 2: publishing %d events at %.0f/s to %d subscribers", events, o.connsRate, o.conns)
	e.prof.start("2-conns")
	s.since.Store(time.Now().UnixMicro())
	achieved, rtts, err := openLoop(ctx, events, o.connsRate, 16, func(ctx context.Context, i int) error {
		ev := restEvent{Type: "user.created", Payload: map[string]any{"user_id": i + 1, "sent_us": time.Now().UnixMicro()}}
		return t.publishREST(ctx, []restEvent{ev})
	})
	if err != nil {
		return res, err
	}
	res.achievedRate = achieved
	res.publishP50, res.publishP99, _ = latencySummary(rtts)
	waitErr := s.waitAll(ctx, base, int64(events), 30*time.Second)
	e.prof.stop()
	if res.rssLoaded, err = t.rssKiB(); err != nil {
		return res, err
	}
	res.expected = int64(events) * int64(o.conns)
	res.received = s.totalSince(base)
	dead, errs := s.trouble()
	s.close()
	lat := s.latencies()
	res.samples = len(lat)
	res.p50, res.p99, res.maxMS = latencySummary(lat)
	if res.achievedRate < 0.95*o.connsRate {
		res.note = fmt.Sprintf("the publisher fell behind: %.1f of %.0f events/s", res.achievedRate, o.connsRate)
	}
	if waitErr != nil || dead > 0 || errs > 0 {
		res.note = joinNotes(res.note, fmt.Sprintf("%d of %d frames received, %d sockets ended, %d error frames (SLOW_CONSUMER); %v", res.received, res.expected, dead, errs, waitErr))
	}
	e.log.printf("scenario 2: RSS %d → %d KiB (%.1f KiB/conn), %d KiB after load; latency p50 %.1f ms p99 %.1f ms max %.1f ms over %d frames",
		res.rssBefore, res.rssAfter, res.perConnKiB, res.rssLoaded, res.p50, res.p99, res.maxMS, res.samples)
	return res, nil
}
