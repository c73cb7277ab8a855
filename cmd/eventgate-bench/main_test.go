package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestQuickRun runs every scenario in miniature against an in-process eventgate: the tool must
// produce a figure and, where there is one, a baseline for each. It checks the tool, not
// eventgate's speed (no goal has to be met).
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five eventgate instances")
	}
	o, err := parseOptions([]string{"-quick", "-inprocess"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, progress bytes.Buffer
	if err := run(ctx, o, &out, &progress); err != nil {
		t.Fatalf("got %v, want a complete run\n%s\n%s", err, progress.String(), out.String())
	}
	table := out.String()
	for _, tc := range []struct {
		scenario string
		want     []string // what the row must contain
	}{
		{"fan-out", []string{"frames/s |", "(raw gorilla broadcast)"}},
		{"RSS per connection", []string{"KiB |"}},
		{"publish→receive p99", []string{" ms |"}},
		{"publish→first attempt", []string{"p50 ", "p99 "}},
		{"pending deliveries", []string{"deliveries/s |", "(raw net/http)"}},
		{"webhooks(limit: 50)", []string{"req/s |", "(net/http + database/sql)"}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			line := rowOf(table, tc.scenario)
			if line == "" {
				t.Fatalf("got no row for %q in\n%s", tc.scenario, table)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("got row %q, want it to contain %q", line, w)
				}
			}
			if strings.Contains(line, "failed") || strings.Contains(line, " 0 frames/s") {
				t.Errorf("got row %q, want a figure", line)
			}
		})
	}
}

func rowOf(table, scenario string) string {
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "| ") && strings.Contains(line, scenario) {
			return line
		}
	}
	return ""
}

func TestSentMicros(t *testing.T) {
	for _, tc := range []struct {
		frame string
		want  int64
	}{
		{`{"id":"1","type":"next","payload":{"data":{"events":{"payload":{"sent_us":1700000000123456,"user_id":1}}}}}`, 1700000000123456},
		{`{"type":"user.created","data":{"user_id":3,"sent_us":42}}`, 42},
		{`{"id":"1","type":"next","payload":{"data":{"events":{"payload":{"user_id":1}}}}}`, 0},
		{`{"sent_us":}`, 0},
	} {
		if got := sentMicros([]byte(tc.frame)); got != tc.want {
			t.Errorf("sentMicros(%s): got %d, want %d", tc.frame, got, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	sorted := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p    float64
		want int64
	}{{50, 5}, {99, 10}, {100, 10}, {10, 1}, {0, 1}} {
		if got := percentile(sorted, tc.p); got != tc.want {
			t.Errorf("percentile(%v): got %d, want %d", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("percentile of nothing: got %d, want 0", got)
	}
}

func TestQuickPresetKeepsExplicitFlags(t *testing.T) {
	o, err := parseOptions([]string{"-quick", "-conns", "7", "-scenarios", "2"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.conns != 7 || o.fanoutSubs != 20 || len(o.scenarios) != 1 || o.scenarios[0] != 2 {
		t.Errorf("got conns %d, fanout subs %d, scenarios %v; want 7, 20, [2]", o.conns, o.fanoutSubs, o.scenarios)
	}
	if _, err := parseOptions([]string{"-scenarios", "6"}, &bytes.Buffer{}); err == nil {
		t.Error("got no error for scenario 6, want one")
	}
}
