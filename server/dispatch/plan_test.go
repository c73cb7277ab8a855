package dispatch

import (
	stdsql "database/sql"
	"strings"
	"testing"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/webhook"
	"github.com/eventgate/eventgate/server/store/sqlitetest"
)

// TestLaneClaimReadsOnlyItsWebhook checks SQLite's plan for the lane refill: it must walk the
// partial index of due deliveries by webhook, in due order, with no sort. Without it each
// refill read every webhook's due rows (issue 6, scenario 4).
func TestLaneClaimReadsOnlyItsWebhook(t *testing.T) {
	st := sqlitetest.Open(t, "normal")
	e := newEnvOn(t, ent.NewClient(ent.Driver(entsql.OpenDB(dialect.SQLite, st.DB))))
	d := e.newDispatcher(testConfig(), Hooks{})
	now := time.Now().UTC()
	query, args := d.claimLaneQuery(1, now, d.leaseFrom(now), 16)

	text := queryPlan(t, st.DB, query, args)
	if !strings.Contains(text, "SEARCH deliveries USING INDEX delivery_due_webhook_id_next_attempt_at (webhook_id=? AND next_attempt_at<?)") {
		t.Errorf("lane claim does not walk the due index by webhook:\n%s\n%s", query, text)
	}
	if !strings.Contains(text, "SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)") {
		t.Errorf("lane claim does not update the rows it found by id:\n%s\n%s", query, text)
	}
	if strings.Contains(text, "TEMP B-TREE") {
		t.Errorf("lane claim sorts instead of reading in index order:\n%s", text)
	}
}

// TestDiscoveryProbesEachWebhook checks SQLite's plan for finding the webhooks with due
// deliveries: one search of the due index per active webhook, never a walk through the due
// deliveries of all webhooks (which cost as much as the backlog was long).
func TestDiscoveryProbesEachWebhook(t *testing.T) {
	st := sqlitetest.Open(t, "normal")
	sel := entsql.Dialect(dialect.SQLite).Select(webhook.FieldID).From(entsql.Table(webhook.Table))
	webhook.IsActive(true)(sel)
	hasDueDeliveries(time.Now().UTC())(sel)
	query, args := sel.Query()
	text := queryPlan(t, st.DB, query, args)
	if !strings.Contains(text, "SEARCH deliveries EXISTS USING INDEX delivery_due_webhook_id_next_attempt_at (webhook_id=? AND next_attempt_at<?)") {
		t.Errorf("discovery does not probe the due index per webhook:\n%s\n%s", query, text)
	}
	if strings.Contains(text, "SCAN deliveries") || strings.Contains(text, "delivery_status_next_attempt_at") {
		t.Errorf("discovery walks the deliveries:\n%s", text)
	}
}

// queryPlan is SQLite's EXPLAIN QUERY PLAN of query, a line per step.
func queryPlan(t *testing.T, db *stdsql.DB, query string, args []any) string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+query, args...)
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
	return strings.Join(plan, "\n")
}
