package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestKeptStatementsRunAgainWhileTheirRowsAreOpen: a statement is kept per connection and run
// again with new arguments; running the same text while an earlier run's rows are still being
// read (on the transaction's one connection) must not disturb those rows, and more distinct
// statements than are kept, one of them evicted while busy, all still answer.
func TestKeptStatementsRunAgainWhileTheirRowsAreOpen(t *testing.T) {
	db := openLocked(t, 30*time.Second)
	ctx := context.Background()
	for i := range 5 {
		if err := insertSetting(ctx, db, fmt.Sprintf("k%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const byPrefix = "SELECT `key` FROM settings WHERE `key` >= ? ORDER BY `key`"
	outer, err := tx.QueryContext(ctx, byPrefix, "k0")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for outer.Next() {
		var k string
		if err := outer.Scan(&k); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, k)
		// The same text again, and enough others to push it out of the cache while busy.
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM ("+byPrefix+")", k).Scan(&n); err != nil {
			t.Fatal(err)
		}
		var inner string
		if err := tx.QueryRowContext(ctx, byPrefix, k).Scan(&inner); err != nil || inner != k {
			t.Fatalf("same statement while its rows are open: %q, %v; want %q", inner, err, k)
		}
		for j := range stmtCacheSize + 1 {
			var v int
			if err := tx.QueryRowContext(ctx, fmt.Sprintf("SELECT %d + ?", j), 1).Scan(&v); err != nil || v != j+1 {
				t.Fatalf("statement %d: %d, %v", j, v, err)
			}
		}
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	if want := []string{"k0", "k1", "k2", "k3", "k4"}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("outer rows %v, want %v", seen, want)
	}
	// Evicted and closed: the text is prepared afresh and still answers.
	var k string
	if err := tx.QueryRowContext(ctx, byPrefix, "k3").Scan(&k); err != nil || k != "k3" {
		t.Fatalf("after eviction: %q, %v", k, err)
	}
}
