package graph_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/eventgate/eventgate/server/servertest"
)

// webhooksListQuery is the admin list of `make bench` scenario 5: every scalar field of a page
// of 50 webhooks.
const webhooksListQuery = `{ webhooks(limit: 50) { total items { id name url eventTypes isActive description hasSecret payloadFormat timeoutSeconds rateLimitPerSecond createdAt updatedAt lastTriggeredAt successCount failureCount disabledReason } } }`

// BenchmarkWebhooksListQuery serves the list query through the whole /query handler (router,
// authentication, HTTP transport, executor, database) of an instance holding 100 webhooks.
// cmd/eventgate-bench compares the same query with a plain database/sql handler.
func BenchmarkWebhooksListQuery(b *testing.B) {
	in := servertest.Start(b, nil)
	for i := range 100 {
		in.MustGraphQL(servertest.AdminToken,
			`mutation($in: CreateWebhookInput!) { createWebhook(input: $in) { webhook { id } } }`,
			map[string]any{"in": map[string]any{
				"name": fmt.Sprintf("listed-%d", i), "url": fmt.Sprintf("http://127.0.0.1:9/hook/%d", i),
				"eventTypes": []string{"user.created"}, "isActive": i%5 != 0,
			}}, nil)
	}
	body, _ := json.Marshal(map[string]any{"query": webhooksListQuery})
	handler := in.App.Handler()
	serve := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+servertest.AdminToken)
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", "application/json")
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, r)
		return w
	}

	var page struct {
		Data struct {
			Webhooks struct {
				Total int
				Items []struct{ HasSecret bool }
			}
		}
	}
	w := serve()
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || w.Code != http.StatusOK {
		b.Fatalf("got %d %s, want a page of webhooks", w.Code, w.Body)
	}
	if got := page.Data.Webhooks; got.Total != 100 || len(got.Items) != 50 || !got.Items[0].HasSecret {
		b.Fatalf("got %s, want total 100 and 50 items with secrets", w.Body)
	}

	b.ReportAllocs()
	// The machines that run benchmarks are often shared: CPU time per request, which counts
	// the executor's goroutines and the garbage collector, moves less than wall time.
	start := processCPU(b)
	for b.Loop() {
		if w := serve(); w.Code != http.StatusOK {
			b.Fatalf("got status %d, want 200: %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64((processCPU(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// processCPU is the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
