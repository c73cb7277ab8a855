package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// hooksResult is what scenario 3 measured.
type hooksResult struct {
	p50, p99, maxMS        float64
	samples, want          int
	achievedRate           float64
	publishP50, publishP99 float64
	cpuPerDelivery         time.Duration // eventgate's CPU time per delivery, publishing included
	retries                int
	note                   string
}

// publishMutation is the producer's call of scenario 3.
const publishMutation = `mutation($in: PublishEventInput!) { publishEvent(input: $in) { id } }`

// runHooks is scenario 3: publishEvent at a steady rate, each event subscribed by several
// webhooks pointing at a local receiver answering 200; publish→first-attempt latency, as the
// receiver's arrival time minus the time the producer sent the event ("sent_us" in its payload).
//
// The publisher is open-loop: event i is due at start + i/rate whatever earlier calls do,
// and a pool of callers sends it, so a slow publishEvent shows as latency rather than as a
// lower rate (the achieved rate is reported too).
func runHooks(ctx context.Context, e *env) (hooksResult, error) {
	o := e.opts
	var res hooksResult
	t, err := e.start(ctx)
	if err != nil {
		return res, err
	}
	defer e.stopTarget(t)
	rc, err := newReceiver(false)
	if err != nil {
		return res, err
	}
	defer rc.close()
	for i := range o.hookWebhooks {
		if _, err := t.createWebhook(ctx, fmt.Sprintf("latency-%d", i), fmt.Sprintf("%s/hook/%d", rc.url, i), true); err != nil {
			return res, err
		}
	}
	// A first event warms connections to the receiver and the executor's caches.
	if err := publishOne(ctx, t, 0); err != nil {
		return res, err
	}
	if err := rc.waitCount(o.hookWebhooks, 30*time.Second); err != nil {
		return res, err
	}
	rc.reset()

	events := int(o.hookRate * o.hookDuration.Seconds())
	res.want = events * o.hookWebhooks
	e.log.printf("scenario 3: publishEvent at %.0f/s for %v, %d webhooks each", o.hookRate, o.hookDuration, o.hookWebhooks)
	e.prof.start("3-hooks")
	cpu0, err := t.cpuTime()
	if err != nil {
		return res, err
	}
	var rtts []int64
	res.achievedRate, rtts, err = openLoop(ctx, events, o.hookRate, 64, func(ctx context.Context, i int) error {
		return publishOne(ctx, t, i+1)
	})
	if err != nil {
		return res, fmt.Errorf("publishEvent: %w", err)
	}
	waitErr := rc.waitCount(res.want, 60*time.Second)
	cpu1, err := t.cpuTime()
	if err != nil {
		return res, err
	}
	e.prof.stop()
	rc.mu.Lock()
	lat := append([]int64(nil), rc.latUS...)
	res.retries = rc.retries
	rc.mu.Unlock()
	res.samples = len(lat)
	res.p50, res.p99, res.maxMS = latencySummary(lat)
	res.publishP50, res.publishP99, _ = latencySummary(rtts)
	if res.samples > 0 {
		res.cpuPerDelivery = (cpu1 - cpu0) / time.Duration(res.samples)
	}
	if res.achievedRate < 0.95*o.hookRate {
		res.note = fmt.Sprintf("the publisher fell behind: %.0f of %.0f events/s", res.achievedRate, o.hookRate)
	}
	if waitErr != nil || res.retries > 0 {
		res.note = joinNotes(res.note, fmt.Sprintf("%d retries; %v", res.retries, waitErr))
	}
	e.log.printf("scenario 3: %d first attempts, p50 %.1f ms p99 %.1f ms max %.1f ms; publishEvent p50 %.1f ms p99 %.1f ms; %.0f events/s achieved; eventgate CPU %s per delivery",
		res.samples, res.p50, res.p99, res.maxMS, res.publishP50, res.publishP99, res.achievedRate, microseconds(res.cpuPerDelivery))
	return res, nil
}

// openLoop calls call(i) for i in [0, n), call i being due at start + i/rate whatever earlier
// calls do, from a pool of callers goroutines (a call waits only for a free caller). It returns
// the achieved rate, each call's duration (µs) and the first error.
func openLoop(ctx context.Context, n int, rate float64, callers int, call func(ctx context.Context, i int) error) (float64, []int64, error) {
	jobs := make(chan int, n)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		rtts     = make([]int64, 0, n)
		firstErr atomic.Pointer[error]
	)
	for range callers {
		wg.Go(func() {
			for i := range jobs {
				began := time.Now()
				if err := call(ctx, i); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				rtt := time.Since(began).Microseconds()
				mu.Lock()
				rtts = append(rtts, rtt)
				mu.Unlock()
			}
		})
	}
	interval := time.Duration(float64(time.Second) / rate)
	began := time.Now()
	for i := range n {
		if d := time.Until(began.Add(time.Duration(i) * interval)); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	achieved := float64(n) / time.Since(began).Seconds()
	if p := firstErr.Load(); p != nil {
		return achieved, rtts, *p
	}
	return achieved, rtts, ctx.Err()
}

// publishOne calls publishEvent with the current time in the payload.
func publishOne(ctx context.Context, t *target, i int) error {
	vars := map[string]any{"in": map[string]any{"type": "user.created", "payload": map[string]any{"user_id": i, "sent_us": time.Now().UnixMicro()}}}
	var out struct {
		PublishEvent struct{ ID string } `json:"publishEvent"`
	}
	if err := t.graphQL(ctx, publishMutation, vars, &out); err != nil {
		return err
	}
	if out.PublishEvent.ID == "" {
		return fmt.Errorf("publishEvent returned no id: %s", mustJSON(out))
	}
	return nil
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
