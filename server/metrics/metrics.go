// Package metrics exposes eventgate's Prometheus metrics: ingest, webhook delivery outcomes and
// latency, the delivery backlog, and streaming connections. Counters are fed by hooks of the
// domain packages; gauges are read when Prometheus scrapes.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds eventgate's collectors in a registry of its own.
type Metrics struct {
	reg                *prometheus.Registry
	eventsPublished    *prometheus.CounterVec
	attempts           *prometheus.CounterVec
	attemptDuration    prometheus.Histogram
	deliveriesFinished *prometheus.CounterVec
}

// New makes the collectors (plus Go runtime and process collectors).
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		eventsPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventgate_events_published_total", Help: "Events stored by ingest, by type.",
		}, []string{"type"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventgate_delivery_attempts_total",
			Help: "Webhook requests made, by outcome (success, failure) and HTTP status code (none when no response came).",
		}, []string{"outcome", "status_code"}),
		attemptDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eventgate_delivery_attempt_duration_seconds",
			Help:    "Duration of webhook requests.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		deliveriesFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventgate_deliveries_finished_total", Help: "Deliveries that reached a final status (SUCCESS or FAILED).",
		}, []string{"status"}),
	}
	m.reg.MustRegister(m.eventsPublished, m.attempts, m.attemptDuration, m.deliveriesFinished,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// EventPublished counts a stored event.
func (m *Metrics) EventPublished(eventType string) {
	m.eventsPublished.WithLabelValues(eventType).Inc()
}

// Attempt records one webhook request: its HTTP status (0 for none), whether it succeeded, and
// how long it took.
func (m *Metrics) Attempt(status int, success bool, d time.Duration) {
	outcome, code := "failure", "none"
	if success {
		outcome = "success"
	}
	if status > 0 {
		code = strconv.Itoa(status)
	}
	m.attempts.WithLabelValues(outcome, code).Inc()
	m.attemptDuration.Observe(d.Seconds())
}

// DeliveryFinished counts a delivery that reached SUCCESS or FAILED.
func (m *Metrics) DeliveryFinished(status string) { m.deliveriesFinished.WithLabelValues(status).Inc() }

// Gauge registers a gauge read at scrape time.
func (m *Metrics) Gauge(name, help string, read func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, read))
}

// Counter registers a counter read at scrape time (a total kept elsewhere).
func (m *Metrics) Counter(name, help string, read func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, read))
}

// Backlog reads the delivery queue: how many deliveries are PENDING and how old the oldest is.
type Backlog func(ctx context.Context) (pending int, oldest time.Duration, err error)

// RegisterBacklog exposes the queue depth and the oldest pending age; the database is asked at
// most once per second however often Prometheus scrapes.
func (m *Metrics) RegisterBacklog(read Backlog, log *slog.Logger) {
	c := &backlogCollector{read: read, log: log,
		depth: prometheus.NewDesc("eventgate_delivery_queue_depth", "Deliveries waiting (PENDING).", nil, nil),
		age:   prometheus.NewDesc("eventgate_delivery_oldest_pending_age_seconds", "Age of the oldest PENDING delivery.", nil, nil),
	}
	m.reg.MustRegister(c)
}

type backlogCollector struct {
	mu         sync.Mutex
	read       Backlog
	log        *slog.Logger
	depth, age *prometheus.Desc
	at         time.Time
	pending    int
	oldest     time.Duration
}

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.depth; ch <- c.age }

// Collect reads the backlog, from the cache when it is fresh.
func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		pending, oldest, err := c.read(ctx)
		cancel()
		if err != nil {
			c.log.Warn("read delivery backlog", "err", err)
		} else {
			c.pending, c.oldest, c.at = pending, oldest, time.Now()
		}
	}
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(c.pending))
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, c.oldest.Seconds())
}
