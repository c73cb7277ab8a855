package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the driver eventgate uses, registered as "sqlite"
)

// queryResult is what scenario 5 measured.
type queryResult struct {
	perSec, rawPerSec float64
	note              string
}

// webhooksQuery is the admin app's list page; the baseline returns the same fields.
const webhooksQuery = `{ webhooks(limit: 50) { total items { id name url eventTypes isActive description hasSecret payloadFormat timeoutSeconds rateLimitPerSecond createdAt updatedAt lastTriggeredAt successCount failureCount disabledReason } } }`

// runQuery is scenario 5: webhooks(limit: 50) under concurrent load, requests/s against a plain
// net/http + database/sql handler of this process returning the same rows as JSON from the
// same SQLite file, opened read-only while eventgate runs.
func runQuery(ctx context.Context, e *env) (queryResult, error) {
	o := e.opts
	var res queryResult
	t, err := e.start(ctx)
	if err != nil {
		return res, err
	}
	defer e.stopTarget(t)
	for i := range o.queryWebhooks {
		if _, err := t.createWebhook(ctx, fmt.Sprintf("listed-%d", i), fmt.Sprintf("http://127.0.0.1:9/hook/%d", i), i%5 != 0); err != nil {
			return res, err
		}
	}
	plain, err := newPlainList(t.dbPath())
	if err != nil {
		return res, err
	}
	defer plain.close()

	gqlBody, _ := json.Marshal(map[string]any{"query": webhooksQuery})
	egReq := func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url+"/query", bytes.NewReader(gqlBody))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+t.token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		return req, nil
	}
	rawReq := func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, plain.url+"/webhooks", nil)
	}
	if err := sameRows(ctx, egReq, rawReq); err != nil {
		return res, err
	}

	e.log.printf("scenario 5: webhooks(limit: 50), %d concurrent clients for %v", o.queryConcurrency, o.queryDuration)
	e.prof.start("5-query")
	res.perSec, err = hammer(ctx, egReq, o.queryConcurrency, o.queryDuration)
	e.prof.stop()
	if err != nil {
		return res, fmt.Errorf("eventgate: %w", err)
	}
	e.log.printf("scenario 5: eventgate %.0f requests/s", res.perSec)
	if res.rawPerSec, err = hammer(ctx, rawReq, o.queryConcurrency, o.queryDuration); err != nil {
		return res, fmt.Errorf("plain handler: %w", err)
	}
	e.log.printf("scenario 5: plain handler %.0f requests/s", res.rawPerSec)
	return res, nil
}

// listPage is the JSON both sides answer: {"data": {"webhooks": {"total", "items"}}}.
type listPage struct {
	Data struct {
		Webhooks struct {
			Total int       `json:"total"`
			Items []listRow `json:"items"`
		} `json:"webhooks"`
	} `json:"data"`
}

type listRow struct {
	ID                 string          `json:"id"`
	Name               string          `json:"name"`
	URL                string          `json:"url"`
	EventTypes         json.RawMessage `json:"eventTypes"`
	IsActive           bool            `json:"isActive"`
	Description        *string         `json:"description"`
	HasSecret          bool            `json:"hasSecret"`
	PayloadFormat      string          `json:"payloadFormat"`
	TimeoutSeconds     int             `json:"timeoutSeconds"`
	RateLimitPerSecond *int            `json:"rateLimitPerSecond"`
	CreatedAt          time.Time       `json:"createdAt"`
	UpdatedAt          time.Time       `json:"updatedAt"`
	LastTriggeredAt    *time.Time      `json:"lastTriggeredAt"`
	SuccessCount       int             `json:"successCount"`
	FailureCount       int             `json:"failureCount"`
	DisabledReason     *string         `json:"disabledReason"`
}

// plainList is the baseline: net/http and database/sql, one count and one select per request.
type plainList struct {
	url string
	db  *sql.DB
	srv *localServer
}

func newPlainList(path string) (*plainList, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("open %s read-only: %w", path, err)
	}
	p := &plainList{db: db}
	srv, err := serveLocal(http.HandlerFunc(p.handle))
	if err != nil {
		db.Close()
		return nil, err
	}
	p.srv, p.url = srv, "http://"+srv.addr
	return p, nil
}

func (p *plainList) handle(w http.ResponseWriter, r *http.Request) {
	var page listPage
	ctx := r.Context()
	if err := p.db.QueryRowContext(ctx, "SELECT count(*) FROM webhooks").Scan(&page.Data.Webhooks.Total); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rows, err := p.db.QueryContext(ctx, `SELECT id, name, url, event_types, is_active, description, length(secret_ciphertext) > 0,
		payload_format, timeout_seconds, rate_limit_per_second, created_at, updated_at, last_triggered_at,
		success_count, failure_count, disabled_reason
		FROM webhooks ORDER BY created_at DESC, id DESC LIMIT 50`)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer rows.Close()
	items := make([]listRow, 0, 50)
	for rows.Next() {
		var it listRow
		var id int64
		var types string
		if err := rows.Scan(&id, &it.Name, &it.URL, &types, &it.IsActive, &it.Description, &it.HasSecret,
			&it.PayloadFormat, &it.TimeoutSeconds, &it.RateLimitPerSecond, &it.CreatedAt, &it.UpdatedAt, &it.LastTriggeredAt,
			&it.SuccessCount, &it.FailureCount, &it.DisabledReason); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		it.ID = fmt.Sprint(id)
		it.EventTypes = json.RawMessage(types)
		it.CreatedAt, it.UpdatedAt = it.CreatedAt.UTC(), it.UpdatedAt.UTC()
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	page.Data.Webhooks.Items = items
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&page)
}

func (p *plainList) close() {
	p.srv.close()
	p.db.Close()
}

// sameRows checks that both sides list the same webhooks in the same order, so the comparison
// is of equal work.
func sameRows(ctx context.Context, eg, raw func(context.Context) (*http.Request, error)) error {
	fetch := func(mk func(context.Context) (*http.Request, error)) (listPage, error) {
		var page listPage
		req, err := mk(ctx)
		if err != nil {
			return page, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return page, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return page, fmt.Errorf("status %d: %.300s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return page, fmt.Errorf("decode %.300s: %w", body, err)
		}
		return page, nil
	}
	a, err := fetch(eg)
	if err != nil {
		return fmt.Errorf("eventgate list: %w", err)
	}
	b, err := fetch(raw)
	if err != nil {
		return fmt.Errorf("plain list: %w", err)
	}
	ids := func(p listPage) []string {
		var out []string
		for _, it := range p.Data.Webhooks.Items {
			out = append(out, it.ID)
		}
		return out
	}
	if a.Data.Webhooks.Total != b.Data.Webhooks.Total || !slices.Equal(ids(a), ids(b)) || len(ids(a)) == 0 {
		return fmt.Errorf("lists differ: eventgate total %d ids %v, plain total %d ids %v",
			a.Data.Webhooks.Total, ids(a), b.Data.Webhooks.Total, ids(b))
	}
	return nil
}

// hammer sends requests from concurrency closed-loop clients for d and returns requests/s.
func hammer(ctx context.Context, mk func(context.Context) (*http.Request, error), concurrency int, d time.Duration) (float64, error) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: 2 * concurrency, MaxIdleConnsPerHost: concurrency}}
	defer client.CloseIdleConnections()
	var done atomic.Int64
	errs := make(chan error, concurrency)
	var wg sync.WaitGroup
	began := time.Now()
	end := began.Add(d)
	for range concurrency {
		wg.Go(func() {
			for time.Now().Before(end) {
				req, err := mk(ctx)
				if err != nil {
					errs <- err
					return
				}
				if err := doOK(client, req); err != nil {
					errs <- err
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(began)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(done.Load()) / elapsed.Seconds(), nil
}

// doOK sends req, drains the body and wants 200.
func doOK(client *http.Client, req *http.Request) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d from %s", resp.StatusCode, req.URL.Host)
	}
	return nil
}
