// Command eventgate-bench is eventgate's load tool (issue 6, BENCHMARKS.md). It starts
// bin/eventgate as a separate process — a fresh SQLite data dir per scenario, a free loopback
// port — drives the five scenarios from this process, measures a baseline for each in the same
// run (a raw gorilla/websocket broadcast, a raw net/http client, a plain database/sql handler)
// and prints a Markdown table: figure, baseline, ratio, goal, met.
//
//	make build && go run ./cmd/eventgate-bench            # what `make bench` runs
//	go run ./cmd/eventgate-bench -quick -inprocess         # a few seconds, no binary
//	go run ./cmd/eventgate-bench -profile /tmp/prof        # in-process, CPU profile per scenario
//
// It builds nothing itself. Every scenario is bounded in count and time and ends by itself.
// The load generator needs a file descriptor per client socket: it raises its soft
// RLIMIT_NOFILE to the hard limit (20,000 on the reference machine) and scales scenario 2
// down, saying so, when even that is too few.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the sizes and modes of a run.
type options struct {
	bin        string
	inProcess  bool
	profileDir string
	scenarios  []int

	fanoutSubs, fanoutEvents, fanoutWindow, fanoutBatch int

	conns         int
	connsRate     float64
	connsDuration time.Duration

	hookRate     float64
	hookWebhooks int
	hookDuration time.Duration

	drainDeliveries, drainWebhooks int

	queryWebhooks, queryConcurrency int
	queryDuration                   time.Duration
}

// quickPreset is -quick: every scenario in miniature, for a smoke test of the tool.
func quickPreset() [][2]string {
	return [][2]string{
		{"fanout-subs", "20"}, {"fanout-events", "50"}, {"fanout-window", "16"}, {"fanout-batch", "8"},
		{"conns", "50"}, {"conns-rate", "20"}, {"conns-duration", "1s"},
		{"hook-rate", "50"}, {"hook-webhooks", "2"}, {"hook-duration", "1s"},
		{"drain", "200"}, {"drain-webhooks", "2"},
		{"query-webhooks", "60"}, {"query-concurrency", "4"}, {"query-duration", "500ms"},
	}
}

// parseOptions reads the command line.
func parseOptions(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("eventgate-bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.bin, "bin", "bin/eventgate", "eventgate binary to run (make build makes it)")
	fs.BoolVar(&o.inProcess, "inprocess", false, "run eventgate inside this process (server.Open) instead of bin; figures then include the load generator")
	fs.StringVar(&o.profileDir, "profile", "", "write CPU profiles of each scenario's eventgate phase (and a heap profile of scenario 2) into this dir; implies -inprocess")
	quick := fs.Bool("quick", false, "tiny sizes: a smoke run of a few seconds")
	only := fs.String("scenarios", "1,2,3,4,5", "comma-separated scenarios to run")
	fs.IntVar(&o.fanoutSubs, "fanout-subs", 1000, "scenario 1: subscribers")
	fs.IntVar(&o.fanoutEvents, "fanout-events", 1000, "scenario 1: events published")
	fs.IntVar(&o.fanoutWindow, "fanout-window", 128, "scenario 1: most events published ahead of the slowest subscriber (below EVENTGATE_SUBSCRIPTION_BUFFER)")
	fs.IntVar(&o.fanoutBatch, "fanout-batch", 32, "scenario 1: events per POST /v1/events")
	fs.IntVar(&o.conns, "conns", 10000, "scenario 2: concurrent subscribed connections")
	fs.Float64Var(&o.connsRate, "conns-rate", 10, "scenario 2: events per second")
	fs.DurationVar(&o.connsDuration, "conns-duration", 30*time.Second, "scenario 2: how long events are published")
	fs.Float64Var(&o.hookRate, "hook-rate", 500, "scenario 3: publishEvent calls per second")
	fs.IntVar(&o.hookWebhooks, "hook-webhooks", 10, "scenario 3: webhooks per event")
	fs.DurationVar(&o.hookDuration, "hook-duration", 10*time.Second, "scenario 3: how long events are published")
	fs.IntVar(&o.drainDeliveries, "drain", 20000, "scenario 4: pending deliveries")
	fs.IntVar(&o.drainWebhooks, "drain-webhooks", 4, "scenario 4: webhooks sharing them (each takes 4 requests in flight, 16 in all)")
	fs.IntVar(&o.queryWebhooks, "query-webhooks", 100, "scenario 5: webhooks stored")
	fs.IntVar(&o.queryConcurrency, "query-concurrency", 16, "scenario 5: concurrent clients")
	fs.DurationVar(&o.queryDuration, "query-duration", 10*time.Second, "scenario 5: how long each side is loaded")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for _, kv := range quickPreset() {
			if !set[kv[0]] {
				if err := fs.Set(kv[0], kv[1]); err != nil {
					return o, err
				}
			}
		}
	}
	for _, part := range strings.Split(*only, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 || n > 5 {
			return o, fmt.Errorf("-scenarios: %q is not a scenario number 1–5", part)
		}
		o.scenarios = append(o.scenarios, n)
	}
	if o.profileDir != "" {
		o.inProcess = true
	}
	if o.fanoutSubs < 1 || o.fanoutEvents < 1 || o.fanoutBatch < 1 || o.fanoutWindow < o.fanoutBatch ||
		o.conns < 1 || o.connsRate <= 0 || o.hookRate <= 0 || o.hookWebhooks < 1 ||
		o.drainWebhooks < 1 || o.drainDeliveries < o.drainWebhooks || o.queryWebhooks < 1 || o.queryConcurrency < 1 {
		return o, errors.New("sizes must be positive, -fanout-window at least -fanout-batch, -drain at least -drain-webhooks")
	}
	return o, nil
}

// env is what the scenarios share.
type env struct {
	opts options
	tmp  string
	log  *progress
	prof *profiler
}

// start starts a fresh eventgate for one scenario.
func (e *env) start(ctx context.Context) (*target, error) {
	bin := e.opts.bin
	if e.opts.inProcess {
		bin = ""
	}
	return startTarget(ctx, bin, e.tmp)
}

func (e *env) stopTarget(t *target) {
	if err := t.close(); err != nil {
		e.log.printf("stopping eventgate: %v", err)
	}
}

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit and returns it. (Go does the
// same at start-up since 1.19; doing it here states the dependency and reads the result.)
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("setrlimit: %w", err)
		}
	}
	return lim.Cur, nil
}

// run runs the selected scenarios and prints the table to out and progress to errOut. It
// fails when a scenario could not produce its figure; missed goals are only reported.
func run(ctx context.Context, o options, out, errOut io.Writer) error {
	log := &progress{w: errOut, start: time.Now()}
	limit, err := raiseFileLimit()
	if err != nil {
		return err
	}
	// Besides the client sockets: the API client, receivers, the runtime; in-process the
	// server's end of every socket is in this process too.
	perConn, reserve := uint64(1), uint64(500)
	if o.inProcess {
		perConn = 2
	}
	var scaled string
	if need := uint64(o.conns)*perConn + reserve; need > limit {
		o.conns = int((limit - reserve) / perConn)
		scaled = fmt.Sprintf("scaled down to %d connections: RLIMIT_NOFILE is %d", o.conns, limit)
		log.printf("scenario 2 %s", scaled)
	}
	if !o.inProcess {
		if _, err := os.Stat(o.bin); err != nil {
			return fmt.Errorf("eventgate binary: %w (run make build first)", err)
		}
	}
	tmp, err := os.MkdirTemp("", "eventgate-bench-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return fmt.Errorf("profile dir: %w", err)
		}
	}
	e := &env{opts: o, tmp: tmp, log: log, prof: &profiler{dir: o.profileDir, log: log}}
	mode := "eventgate as a separate process (" + o.bin + ")"
	if o.inProcess {
		mode = "eventgate in-process (figures include the load generator)"
	}
	loadBefore := loadAvg()
	log.printf("machine: %s; RLIMIT_NOFILE %d; %s", machine(), limit, mode)

	var rows []row
	var failed []string
	fail := func(name string, err error) {
		rows = append(rows, failedRow(name, err))
		failed = append(failed, name)
		log.printf("%s failed: %v", name, err)
	}
	for _, n := range o.scenarios {
		if ctx.Err() != nil {
			break
		}
		// A scenario that fails midway leaves its profile open.
		e.prof.stop()
		switch n {
		case 1:
			name := fmt.Sprintf("1 fan-out, %s subscribers × %s events", thousands(int64(o.fanoutSubs)), thousands(int64(o.fanoutEvents)))
			r, err := runFanout(ctx, e)
			if err != nil {
				fail(name, err)
				continue
			}
			rw := ratioRow(name, r.framesPerSec, r.rawPerSec, "frames/s", 0.8)
			rw.baseline = strings.Replace(rw.baseline, "frames/s", "frames/s (raw gorilla broadcast)", 1)
			rw.note = joinNotes(fmt.Sprintf("%s frames delivered; publisher window %d events", thousands(r.frames), o.fanoutWindow), r.note)
			rows = append(rows, rw)
		case 2:
			r, err := runConns(ctx, e)
			name := fmt.Sprintf("2 %s subscribed connections", thousands(int64(o.conns)))
			if err != nil {
				fail(name+", RSS per connection", err)
				continue
			}
			info := fmt.Sprintf("RSS %s KiB before, %s KiB with %s subscriptions, %s KiB after the load; %s frames, %.1f events/s achieved (POST /v1/events p50 %.1f ms, p99 %.1f ms); latency p50 %.1f ms, max %.1f ms",
				thousands(r.rssBefore), thousands(r.rssAfter), thousands(int64(r.conns)), thousands(r.rssLoaded), thousands(r.received),
				r.achievedRate, r.publishP50, r.publishP99, r.p50, r.maxMS)
			rows = append(rows,
				limitRow(name+", RSS per connection", fmt.Sprintf("%.1f KiB", r.perConnKiB), r.perConnKiB, 40, "≤ 40 KiB"),
				withNote(limitRow(fmt.Sprintf("2 %.0f events/s to them, publish→receive p99", o.connsRate), fmt.Sprintf("%.1f ms", r.p99), r.p99, 250, "≤ 250 ms"),
					joinNotes(info, scaled, r.note)))
		case 3:
			name := fmt.Sprintf("3 publishEvent %.0f/s × %d webhooks, publish→first attempt", o.hookRate, o.hookWebhooks)
			r, err := runHooks(ctx, e)
			if err != nil {
				fail(name, err)
				continue
			}
			info := fmt.Sprintf("%s first attempts, max %.1f ms; publishEvent round trip p50 %.1f ms, p99 %.1f ms; %.0f events/s achieved; eventgate CPU %s per delivery",
				thousands(int64(r.samples)), r.maxMS, r.publishP50, r.publishP99, r.achievedRate, microseconds(r.cpuPerDelivery))
			rows = append(rows, withNote(limitRow(name, fmt.Sprintf("p50 %.1f ms, p99 %.1f ms", r.p50, r.p99), r.p99, 50, "p99 ≤ 50 ms"), joinNotes(info, r.note)))
		case 4:
			name := fmt.Sprintf("4 drain %s pending deliveries", thousands(int64(o.drainDeliveries)))
			r, err := runDrain(ctx, e)
			if err != nil {
				fail(name, err)
				continue
			}
			rw := ratioRow(name, r.perSec, r.rawPerSec, "deliveries/s", 0.5)
			rw.baseline = strings.Replace(rw.baseline, "deliveries/s", "req/s (raw net/http)", 1)
			rw.note = joinNotes(fmt.Sprintf("%d webhooks, %d requests in flight on both sides; first request %v after enabling; eventgate CPU %s per delivery",
				o.drainWebhooks, r.concurrency, r.startDelay.Round(time.Millisecond), microseconds(r.cpuPerDelivery)), r.note)
			rows = append(rows, rw)
		case 5:
			name := fmt.Sprintf("5 webhooks(limit: 50), %d concurrent clients", o.queryConcurrency)
			r, err := runQuery(ctx, e)
			if err != nil {
				fail(name, err)
				continue
			}
			rw := ratioRow(name, r.perSec, r.rawPerSec, "req/s", 0.5)
			rw.baseline = strings.Replace(rw.baseline, "req/s", "req/s (net/http + database/sql)", 1)
			rw.note = r.note
			rows = append(rows, rw)
		}
	}
	e.prof.stop()
	log.printf("done; load average %s before, %s after", loadBefore, loadAvg())
	fmt.Fprintf(out, "eventgate-bench — %s\n%s; load average %s before, %s after\n\n", mode, machine(), loadBefore, loadAvg())
	writeTable(out, rows)
	if len(failed) > 0 {
		return fmt.Errorf("scenarios without a figure: %s", strings.Join(failed, "; "))
	}
	return ctx.Err()
}

// microseconds formats a duration as whole microseconds.
func microseconds(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }

func withNote(r row, note string) row {
	r.note = note
	return r
}

func joinNotes(notes ...string) string {
	return strings.Join(slices.DeleteFunc(notes, func(s string) bool { return s == "" }), "; ")
}

func main() {
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "eventgate-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "eventgate-bench:", err)
		os.Exit(1)
	}
}
