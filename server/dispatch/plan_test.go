package dispatch

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/server/store/sqlitetest"
)

// queryRecorder is a driver that remembers the last query it ran.
type queryRecorder struct {
	dialect.Driver
	mu    sync.Mutex
	query string
	args  []any
}

func (r *queryRecorder) Query(ctx context.Context, query string, args, v any) error {
	r.mu.Lock()
	r.query, r.args = query, args.([]any)
	r.mu.Unlock()
	return r.Driver.Query(ctx, query, args, v)
}

// TestLaneQueryReadsOnlyItsWebhook checks SQLite's plan for the lane refill: it must walk the
// partial index of due deliveries by webhook, in due order, with no sort. Without it each
// refill read every webhook's due rows (issue 6, scenario 4).
func TestLaneQueryReadsOnlyItsWebhook(t *testing.T) {
	st := sqlitetest.Open(t, "normal")
	rec := &queryRecorder{Driver: entsql.OpenDB(dialect.SQLite, st.DB)}
	e := newEnvOn(t, ent.NewClient(ent.Driver(rec)))
	d := New(e.client, e.box, e.guard, testConfig(), Hooks{}, slog.New(slog.DiscardHandler))
	if _, err := d.laneQuery(d.client, 1, time.Now().UTC()).Limit(16).All(context.Background()); err != nil {
		t.Fatal(err)
	}

	rows, err := st.DB.Query("EXPLAIN QUERY PLAN "+rec.query, rec.args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "SEARCH deliveries USING INDEX delivery_due_webhook_id_next_attempt_at (webhook_id=? AND next_attempt_at<?)") {
		t.Errorf("lane query does not walk the due index by webhook:\n%s\n%s", rec.query, text)
	}
	if strings.Contains(text, "TEMP B-TREE") {
		t.Errorf("lane query sorts instead of reading in index order:\n%s", text)
	}
}
