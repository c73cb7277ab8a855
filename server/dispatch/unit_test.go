package dispatch

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestNextDelay(t *testing.T) {
	schedule := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute}
	tests := []struct {
		name    string
		attempt int
		jitter  float64
		rnd     float64
		want    time.Duration
		wantOK  bool
	}{
		{name: "first retry without jitter", attempt: 1, jitter: 0, rnd: 0.9, want: 5 * time.Second, wantOK: true},
		{name: "lowest jitter", attempt: 1, jitter: 0.2, rnd: 0, want: 4 * time.Second, wantOK: true},
		{name: "middle jitter", attempt: 2, jitter: 0.2, rnd: 0.5, want: 5 * time.Minute, wantOK: true},
		{name: "near highest jitter", attempt: 3, jitter: 0.2, rnd: 0.999999, want: 36 * time.Minute, wantOK: true},
		{name: "negative jitter means none", attempt: 3, jitter: -1, rnd: 0, want: 30 * time.Minute, wantOK: true},
		{name: "last attempt", attempt: 4, jitter: 0.2, rnd: 0.5, wantOK: false},
		{name: "no attempt", attempt: 0, jitter: 0.2, rnd: 0.5, wantOK: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := NextDelay(schedule, tc.attempt, tc.jitter, func() float64 { return tc.rnd })
			if ok != tc.wantOK {
				t.Fatalf("got ok %v, want %v", ok, tc.wantOK)
			}
			if ok && (got-tc.want).Abs() > time.Millisecond {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNextDelayStaysWithinJitter(t *testing.T) {
	schedule := DefaultSchedule()
	if len(schedule) != 9 {
		t.Fatalf("got %d waits in the default schedule, want 9 (ten attempts)", len(schedule))
	}
	for attempt := 1; attempt <= len(schedule); attempt++ {
		base := schedule[attempt-1]
		lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
		for range 200 {
			got, ok := NextDelay(schedule, attempt, 0.2, nil)
			if !ok || got < lo || got > hi {
				t.Fatalf("attempt %d: got %v (%v), want within [%v, %v]", attempt, got, ok, lo, hi)
			}
		}
	}
	if _, ok := NextDelay(schedule, 10, 0.2, nil); ok {
		t.Errorf("got a retry after attempt 10, want none")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		status int
		value  string
		want   time.Duration
		wantOK bool
	}{
		{name: "seconds on 503", status: 503, value: "120", want: 2 * time.Minute, wantOK: true},
		{name: "seconds on 429", status: 429, value: "0", want: 0, wantOK: true},
		{name: "http date", status: 429, value: now.Add(90 * time.Second).Format(http.TimeFormat), want: 90 * time.Second, wantOK: true},
		{name: "date in the past", status: 503, value: now.Add(-time.Hour).Format(http.TimeFormat), want: 0, wantOK: true},
		{name: "capped", status: 503, value: "999999999999", want: 24 * time.Hour, wantOK: true},
		{name: "capped date", status: 503, value: now.Add(48 * time.Hour).Format(http.TimeFormat), want: 24 * time.Hour, wantOK: true},
		{name: "ignored on 500", status: 500, value: "10", wantOK: false},
		{name: "garbage", status: 503, value: "soon", wantOK: false},
		{name: "negative", status: 503, value: "-5", wantOK: false},
		{name: "absent", status: 503, value: "", wantOK: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.value != "" {
				h.Set("Retry-After", tc.value)
			}
			got, ok := retryAfter(tc.status, h, now, 24*time.Hour)
			if ok != tc.wantOK || got != tc.want {
				t.Errorf("got %v %v, want %v %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestReadBody(t *testing.T) {
	euro := "€" // three bytes
	crossing := strings.Repeat("a", maxResponseBody-1) + euro + "tail"
	tests := []struct {
		name string
		in   string
		want func(string) bool
	}{
		{name: "short text", in: `{"ok":true}`, want: func(s string) bool { return s == `{"ok":true}` }},
		{name: "empty", in: "", want: func(s string) bool { return s == "" }},
		{name: "cut at a rune boundary", in: crossing, want: func(s string) bool {
			return utf8.ValidString(s) && s == strings.Repeat("a", maxResponseBody-1)
		}},
		{name: "exactly the limit", in: strings.Repeat("b", maxResponseBody), want: func(s string) bool { return len(s) == maxResponseBody }},
		{name: "binary", in: "\x00\x01\xff\xfe", want: func(s string) bool { return strings.HasPrefix(s, "[binary response body") }},
		{name: "invalid utf-8", in: "ok \xff", want: func(s string) bool { return strings.HasPrefix(s, "[binary response body") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := readBody(strings.NewReader(tc.in)); !tc.want(got) {
				t.Errorf("got %d bytes %.40q…, want otherwise", len(got), got)
			}
		})
	}
}

func TestReservedHeadersCannotBeOverridden(t *testing.T) {
	for _, name := range []string{"content-type", "USER-AGENT", "Webhook-Signature", "x-webhook-attempt", "Host"} {
		if !reservedHeader(name) {
			t.Errorf("got %s not reserved, want reserved", name)
		}
	}
	if reservedHeader("Authorization") {
		t.Errorf("got Authorization reserved, want allowed")
	}
}
