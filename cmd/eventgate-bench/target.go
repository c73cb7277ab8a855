package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eventgate/eventgate/server"
	"github.com/eventgate/eventgate/server/config"
)

// target is one running eventgate under test, with a fresh SQLite data dir and an admin token.
type target struct {
	// url is the base URL, http://127.0.0.1:<port>.
	url string
	// token is the bootstrap admin token (every scope).
	token string
	// pid is the process whose RSS is eventgate's: the child in process mode, ourselves in-process.
	pid int
	// dataDir holds eventgate.db.
	dataDir string
	// inProcess is set when eventgate runs inside this process (figures then include the load
	// generator's own memory and CPU).
	inProcess bool
	api       *http.Client
	stop      func() error
	closed    bool
}

// targetEnv is the environment every scenario runs eventgate with.
func targetEnv(addr, dataDir, token string) map[string]string {
	return map[string]string{
		"EVENTGATE_ADDR":        addr,
		"EVENTGATE_DATA_DIR":    dataDir,
		"EVENTGATE_ADMIN_TOKEN": token,
		// The load generator publishes with one token, far above the default 1000/s budget.
		"EVENTGATE_PUBLISH_RATE":    "1000000",
		"EVENTGATE_ALLOWED_TARGETS": "127.0.0.0/8",
		// Info logs one line per HTTP request; the baselines log nothing, so neither does eventgate.
		"EVENTGATE_LOG_LEVEL": "warn",
	}
}

// startTarget starts eventgate on a free loopback port and a fresh data dir under tmp, as a
// child process running bin, or inside this process when bin is "".
func startTarget(ctx context.Context, bin, tmp string) (*target, error) {
	dataDir, err := os.MkdirTemp(tmp, "data-")
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := "bench-admin-" + hex.EncodeToString(b[:])
	env := targetEnv(addr, dataDir, token)
	t := &target{url: "http://" + addr, token: token, dataDir: dataDir, api: apiClient()}
	if bin == "" {
		err = t.startInProcess(ctx, env)
	} else {
		err = t.startProcess(ctx, bin, env, tmp)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

func apiClient() *http.Client {
	return &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 128, IdleConnTimeout: 30 * time.Second},
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (t *target) startProcess(ctx context.Context, bin string, env map[string]string, tmp string) error {
	logFile, err := os.CreateTemp(tmp, "eventgate-*.log")
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	t.pid = cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.stop = func() error {
		defer logFile.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return cleanExit(err)
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("eventgate did not stop within 20s of SIGTERM; killed")
		}
	}
	if err := t.waitReady(ctx, exited); err != nil {
		_ = t.stop()
		out, _ := os.ReadFile(logFile.Name())
		return fmt.Errorf("%w\n%s", err, tail(out, 2000))
	}
	return nil
}

// cleanExit treats the exit after SIGTERM as clean.
func cleanExit(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return err
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (t *target) startInProcess(ctx context.Context, env map[string]string) error {
	cfg, err := config.Load(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	app, err := server.Open(runCtx, cfg, log, io.Discard)
	if err != nil {
		cancel()
		return fmt.Errorf("open eventgate: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		cancel()
		_ = app.Close(context.Background())
		return fmt.Errorf("listen: %w", err)
	}
	app.Start(runCtx)
	srv := &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return runCtx }}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.pid, t.inProcess = os.Getpid(), true
	t.stop = func() error {
		closeCtx, done := context.WithTimeout(context.Background(), 20*time.Second)
		defer done()
		app.CloseStreams(closeCtx)
		_ = srv.Close()
		<-served
		cancel()
		return app.Close(closeCtx)
	}
	return t.waitReady(ctx, nil)
}

// waitReady polls /readyz until it answers 200, the process exits or 30 s pass.
func (t *target) waitReady(ctx context.Context, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.url+"/readyz", nil)
		resp, err := t.api.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("eventgate exited before it was ready: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("eventgate was not ready within 30s")
}

// close stops eventgate and removes its data dir; later calls do nothing.
func (t *target) close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	err := t.stop()
	t.api.CloseIdleConnections()
	return errors.Join(err, os.RemoveAll(t.dataDir))
}

// dbPath is the SQLite file of the instance.
func (t *target) dbPath() string { return filepath.Join(t.dataDir, "eventgate.db") }

// rssKiB reads VmRSS of eventgate's process from /proc.
func (t *target) rssKiB() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", t.pid))
	if err != nil {
		return 0, fmt.Errorf("read rss: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// cpuTime reads the CPU time (user + system) eventgate's process has used from /proc; in-process
// it is the whole tool's. The kernel counts it in clock ticks (10 ms), fine over seconds.
func (t *target) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", t.pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu time: %w", err)
	}
	// The command name (field 2) may hold spaces; the fields after its ")" are plain.
	_, rest, ok := strings.Cut(string(b), ") ")
	fields := strings.Fields(rest)
	if !ok || len(fields) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat", t.pid)
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime and stime, fields 14 and 15 of stat(5)
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/%d/stat: %w", t.pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / clockTicksPerSecond), nil
}

// clockTicksPerSecond is USER_HZ, 100 on Linux (sysconf(_SC_CLK_TCK)).
const clockTicksPerSecond = 100

// graphQL posts a GraphQL operation with the admin token and decodes data into out (when not
// nil); GraphQL errors are returned as an error.
func (t *target) graphQL(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	raw, status, err := t.post(ctx, "/query", body)
	if err != nil {
		return err
	}
	var resp struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return fmt.Errorf("graphql answered %d with non-JSON: %.200s", status, raw)
	}
	if len(resp.Errors) > 0 {
		return fmt.Errorf("graphql: %s", resp.Errors[0].Message)
	}
	if out != nil {
		if err := json.Unmarshal(resp.Data, out); err != nil {
			return fmt.Errorf("decode data: %w", err)
		}
	}
	return nil
}

// post sends a JSON body with the admin token and returns the response body and status.
func (t *target) post(ctx context.Context, path string, body []byte) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+t.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := t.api.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("post %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("read %s response: %w", path, err)
	}
	return raw, resp.StatusCode, nil
}

// publishREST posts events to POST /v1/events (an array, so a batch is one transaction).
func (t *target) publishREST(ctx context.Context, events []restEvent) error {
	body, err := json.Marshal(events)
	if err != nil {
		return fmt.Errorf("encode events: %w", err)
	}
	raw, status, err := t.post(ctx, "/v1/events", body)
	if err != nil {
		return err
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return fmt.Errorf("POST /v1/events answered %d: %.300s", status, raw)
	}
	return nil
}

// restEvent is one event as POST /v1/events takes it.
type restEvent struct {
	Type    string         `json:"type"`
	Payload map[string]any `json:"payload"`
}

// createWebhook creates a webhook for user.created events and returns its id.
func (t *target) createWebhook(ctx context.Context, name, url string, active bool) (string, error) {
	var out struct {
		CreateWebhook struct {
			Webhook struct{ ID string } `json:"webhook"`
		} `json:"createWebhook"`
	}
	err := t.graphQL(ctx, `mutation($in: CreateWebhookInput!) { createWebhook(input: $in) { webhook { id } } }`,
		map[string]any{"in": map[string]any{"name": name, "url": url, "eventTypes": []string{"user.created"}, "isActive": active}}, &out)
	if err != nil {
		return "", fmt.Errorf("create webhook %s: %w", name, err)
	}
	return out.CreateWebhook.Webhook.ID, nil
}
