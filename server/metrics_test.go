package server_test

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/eventgate/eventgate/graph/scalar"
	"github.com/eventgate/eventgate/server/servertest"
)

// scrape returns the value of a metric line (name with labels exactly as exposed), or -1.
func scrape(t *testing.T, url, series string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`).FindSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func TestMetricsMove(t *testing.T) {
	eg := servertest.Start(t, nil)
	receiver := servertest.NewReceiver(t)
	eg.MustGraphQL(servertest.AdminToken, createWebhook, webhookInput(map[string]any{"url": receiver.URL, "eventTypes": []string{"user.created"}}), nil)
	if v := scrape(t, eg.URL, `eventgate_websocket_connections`); v != 0 {
		t.Fatalf("got %v open WebSocket connections before any, want 0", v)
	}
	c := eg.Subscriber(servertest.AdminToken)
	// From the start of the log, so no event can slip in before the subscription runs.
	c.Subscribe("1", eventsSubscription, map[string]any{"after": string(scalar.CursorFor(0))})
	publishBatch(t, eg, 0, 5)
	for i := 0; i < 5; i++ {
		c.Read()
	}
	if v := scrape(t, eg.URL, `eventgate_events_published_total{type="user.created"}`); v != 5 {
		t.Errorf("events published: got %v, want 5", v)
	}
	if v := scrape(t, eg.URL, `eventgate_websocket_connections`); v != 1 {
		t.Errorf("WebSocket connections: got %v, want 1", v)
	}
	if v := scrape(t, eg.URL, `eventgate_websocket_operations`); v != 1 {
		t.Errorf("active subscriptions: got %v, want 1", v)
	}
	servertest.WaitFor(t, 10*time.Second, "5 deliveries finished", func() bool {
		return scrape(t, eg.URL, `eventgate_deliveries_finished_total{status="SUCCESS"}`) == 5
	})
	if v := scrape(t, eg.URL, `eventgate_delivery_attempts_total{outcome="success",status_code="200"}`); v != 5 {
		t.Errorf("successful attempts: got %v, want 5", v)
	}
	if v := scrape(t, eg.URL, `eventgate_delivery_attempt_duration_seconds_count`); v != 5 {
		t.Errorf("attempt duration observations: got %v, want 5", v)
	}
	if v := scrape(t, eg.URL, `eventgate_delivery_queue_depth`); v < 0 {
		t.Errorf("queue depth missing")
	}
}
