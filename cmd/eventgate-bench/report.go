package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// row is one line of the result table.
type row struct {
	scenario string
	figure   string
	baseline string // "—" when the goal is absolute
	ratio    float64
	goal     string
	// met is nil when there is no figure (the scenario failed).
	met  *bool
	note string
}

// ratioRow builds a row whose goal is figure ÷ baseline ≥ want.
func ratioRow(scenario string, figure, baseline float64, unit string, want float64) row {
	r := row{
		scenario: scenario,
		figure:   fmt.Sprintf("%s %s", human(figure), unit),
		baseline: fmt.Sprintf("%s %s", human(baseline), unit),
		ratio:    math.NaN(),
		goal:     fmt.Sprintf("ratio ≥ %.1f", want),
	}
	if baseline > 0 {
		r.ratio = figure / baseline
		met := r.ratio >= want
		r.met = &met
	}
	return r
}

// limitRow builds a row whose goal is figure ≤ limit.
func limitRow(scenario, figure string, value, limit float64, goal string) row {
	met := value <= limit
	return row{scenario: scenario, figure: figure, baseline: "—", ratio: math.NaN(), goal: goal, met: &met}
}

// failedRow reports a scenario that could not produce its figure.
func failedRow(scenario string, err error) row {
	return row{scenario: scenario, figure: "failed", baseline: "—", ratio: math.NaN(), goal: "—", note: err.Error()}
}

// human formats a rate or count with thousands separators and sensible precision.
func human(v float64) string {
	switch {
	case v >= 100:
		return thousands(int64(math.Round(v)))
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[0] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// percentile returns the p-th percentile (0–100) of sorted values, nearest rank.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}

// latencySummary sorts µs latencies and returns p50, p99 and max in milliseconds.
func latencySummary(us []int64) (p50, p99, maxMS float64) {
	slices.Sort(us)
	if len(us) == 0 {
		return 0, 0, 0
	}
	return float64(percentile(us, 50)) / 1000, float64(percentile(us, 99)) / 1000, float64(us[len(us)-1]) / 1000
}

// writeTable prints the rows as a Markdown table, then the notes.
func writeTable(w io.Writer, rows []row) {
	fmt.Fprintln(w, "| # | scenario | figure | baseline (same run) | ratio | goal | met? |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for i, r := range rows {
		ratio := "—"
		if !math.IsNaN(r.ratio) {
			ratio = fmt.Sprintf("%.2f", r.ratio)
		}
		met := "—"
		if r.met != nil {
			met = map[bool]string{true: "yes", false: "**no**"}[*r.met]
		}
		num := strings.SplitN(r.scenario, " ", 2)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", num[0], num[len(num)-1], r.figure, r.baseline, ratio, r.goal, met)
		_ = i
	}
	var notes []string
	for _, r := range rows {
		if r.note != "" {
			notes = append(notes, fmt.Sprintf("- %s: %s", strings.SplitN(r.scenario, " ", 2)[0], r.note))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Notes:")
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
}

// machine describes where the run happened.
func machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
		f.Close()
	}
	return fmt.Sprintf("%d CPUs (%s), %s, %s/%s", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// loadAvg is the 1-minute load average: the machine is shared, so the report shows how busy it was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// progress prints a timestamped line about what the run is doing.
type progress struct {
	w     io.Writer
	start time.Time
}

func (p *progress) printf(format string, args ...any) {
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}
