package servertest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Receiver is a real webhook receiver that records every request it gets.
type Receiver struct {
	URL string
	mu  sync.Mutex
	// attempts counts requests per (webhook-id header, X-Webhook-Id) pair.
	attempts map[[2]string]int
	total    int
	// Status is what the receiver answers (200 unless set).
	status int
}

// NewReceiver starts a receiver answering 200.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{attempts: map[[2]string]int{}, status: http.StatusOK}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		r.attempts[[2]string{req.Header.Get("webhook-id"), req.Header.Get("X-Webhook-Id")}]++
		r.total++
		status := r.status
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Total is the number of requests received.
func (r *Receiver) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Attempts returns a copy of the per-pair counts.
func (r *Receiver) Attempts() map[[2]string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[[2]string]int, len(r.attempts))
	for k, v := range r.attempts {
		out[k] = v
	}
	return out
}
