package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// drainResult is what scenario 4 measured.
type drainResult struct {
	perSec, rawPerSec float64
	deliveries        int
	concurrency       int
	startDelay        time.Duration
	cpuPerDelivery    time.Duration // eventgate's CPU time per delivery while draining
	note              string
}

// dispatcherWorkers and perWebhookInFlight are eventgate's defaults (EVENTGATE_WORKERS, and the
// dispatcher's per-webhook bound): webhooks × perWebhookInFlight requests can be in flight, at
// most dispatcherWorkers.
const (
	dispatcherWorkers  = 16
	perWebhookInFlight = 4
)

// runDrain is scenario 4: a backlog of pending deliveries drained to a local receiver,
// deliveries/s against a raw net/http client posting the same bodies with the same
// concurrency. Both rates are the receiver's: requests between the first and the last arrival.
//
// The backlog: events are published first, then webhooks created disabled, then replayEvents
// gives each webhook a delivery per event; a disabled webhook's deliveries wait. Enabling the
// webhooks starts the drain.
func runDrain(ctx context.Context, e *env) (drainResult, error) {
	o := e.opts
	res := drainResult{concurrency: min(dispatcherWorkers, o.drainWebhooks*perWebhookInFlight)}
	t, err := e.start(ctx)
	if err != nil {
		return res, err
	}
	defer e.stopTarget(t)
	rc, err := newReceiver(true)
	if err != nil {
		return res, err
	}
	defer rc.close()

	perHook := o.drainDeliveries / o.drainWebhooks
	res.deliveries = perHook * o.drainWebhooks
	e.log.printf("scenario 4: building a backlog of %d deliveries (%d events × %d webhooks)", res.deliveries, perHook, o.drainWebhooks)
	since := time.Now().Add(-time.Minute).UTC()
	for done := 0; done < perHook; {
		n := min(500, perHook-done)
		batch := make([]restEvent, n)
		for i := range batch {
			batch[i] = restEvent{Type: "user.created", Payload: map[string]any{
				"user_id": done + i + 1, "username": fmt.Sprintf("drain-%d", done+i+1), "email": "someone@example.com", "auth_type": "telegram"}}
		}
		if err := t.publishREST(ctx, batch); err != nil {
			return res, err
		}
		done += n
	}
	ids := make([]string, o.drainWebhooks)
	for i := range ids {
		if ids[i], err = t.createWebhook(ctx, fmt.Sprintf("drain-%d", i), fmt.Sprintf("%s/drain/%d", rc.url, i), false); err != nil {
			return res, err
		}
		var out struct{ ReplayEvents int }
		if err := t.graphQL(ctx, `mutation($id: ID!, $since: Time!) { replayEvents(webhookId: $id, since: $since) }`,
			map[string]any{"id": ids[i], "since": since.Format(time.RFC3339)}, &out); err != nil {
			return res, fmt.Errorf("replay: %w", err)
		}
		if out.ReplayEvents != perHook {
			return res, fmt.Errorf("replayEvents created %d deliveries, want %d", out.ReplayEvents, perHook)
		}
	}

	// One request enables every webhook (mutations of a request run in order).
	var enable bytes.Buffer
	enable.WriteString("mutation {")
	for i, id := range ids {
		fmt.Fprintf(&enable, ` e%d: updateWebhook(id: %q, input: {isActive: true}) { id }`, i, id)
	}
	enable.WriteString(" }")
	e.log.printf("scenario 4: enabling the webhooks")
	e.prof.start("4-drain")
	cpu0, err := t.cpuTime()
	if err != nil {
		return res, err
	}
	enabled := time.Now()
	if err := t.graphQL(ctx, enable.String(), nil, nil); err != nil {
		return res, err
	}
	waitErr := rc.waitCount(res.deliveries, 5*time.Minute)
	cpu1, err := t.cpuTime()
	if err != nil {
		return res, err
	}
	e.prof.stop()
	n, first, last := rc.snapshot()
	if n > 0 {
		res.cpuPerDelivery = (cpu1 - cpu0) / time.Duration(n)
	}
	res.startDelay = first.Sub(enabled)
	if n > 1 {
		res.perSec = float64(n-1) / last.Sub(first).Seconds()
	}
	rc.mu.Lock()
	bodies, retries := rc.bodies, rc.retries
	rc.mu.Unlock()
	if waitErr != nil || retries > 0 {
		res.note = fmt.Sprintf("%d retries; %v", retries, waitErr)
	}
	e.log.printf("scenario 4: eventgate drained %d deliveries at %.0f/s (first request %v after enabling; CPU %s per delivery)", n, res.perSec, res.startDelay.Round(time.Millisecond), microseconds(res.cpuPerDelivery))

	rc.reset()
	e.stopTarget(t) // the baseline runs alone
	e.log.printf("scenario 4: raw net/http client, %d bodies, concurrency %d", len(bodies), res.concurrency)
	if err := rawPost(ctx, rc, bodies, res.concurrency); err != nil {
		return res, fmt.Errorf("raw client: %w", err)
	}
	n, first, last = rc.snapshot()
	if n > 1 {
		res.rawPerSec = float64(n-1) / last.Sub(first).Seconds()
	}
	e.log.printf("scenario 4: raw %.0f/s", res.rawPerSec)
	return res, nil
}

// rawPost posts bodies to the receiver with concurrency goroutines over keep-alive connections.
func rawPost(ctx context.Context, rc *receiver, bodies [][]byte, concurrency int) error {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 2 * concurrency, MaxIdleConnsPerHost: concurrency}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, concurrency)
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, rc.url+"/raw", bytes.NewReader(bodies[i]))
				if err != nil {
					errs <- err
					return
				}
				req.Header.Set("Content-Type", "application/json")
				if err := doOK(client, req); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
