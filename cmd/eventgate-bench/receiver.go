package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// receiver is a local webhook receiver answering 200. It notes, per request, the arrival time
// and, for first attempts, the latency from the "sent_us" the event carries; it can keep the
// bodies, which the raw client of scenario 4 posts again.
type receiver struct {
	url string
	srv *localServer

	mu      sync.Mutex
	count   int
	first   time.Time
	last    time.Time
	latUS   []int64
	retries int
	keep    bool
	bodies  [][]byte
}

// newReceiver listens on a free loopback port. keepBodies makes it store every body.
func newReceiver(keepBodies bool) (*receiver, error) {
	r := &receiver{keep: keepBodies}
	srv, err := serveLocal(http.HandlerFunc(r.handle))
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	r.srv, r.url = srv, "http://"+srv.addr
	return r, nil
}

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	now := time.Now()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	sent := sentMicros(body)
	firstAttempt := req.Header.Get("X-Webhook-Attempt") == "1"
	r.mu.Lock()
	if r.count == 0 {
		r.first = now
	}
	r.count++
	r.last = now
	switch {
	case firstAttempt && sent > 0:
		r.latUS = append(r.latUS, now.UnixMicro()-sent)
	case req.Header.Get("X-Webhook-Attempt") != "" && !firstAttempt:
		r.retries++
	}
	if r.keep {
		r.bodies = append(r.bodies, bytes.Clone(body))
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// snapshot returns the request count and the first and last arrival.
func (r *receiver) snapshot() (count int, first, last time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count, r.first, r.last
}

// reset forgets what was received.
func (r *receiver) reset() {
	r.mu.Lock()
	r.count, r.first, r.last, r.latUS, r.retries, r.bodies = 0, time.Time{}, time.Time{}, nil, 0, nil
	r.mu.Unlock()
}

// waitCount waits until count requests arrived.
func (r *receiver) waitCount(want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, _, _ := r.snapshot()
		if n >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("receiver got %d of %d requests within %v", n, want, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *receiver) close() { r.srv.close() }
