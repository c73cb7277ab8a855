package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// openLocked opens a migrated SQLite store whose writer lock gives up after wait.
func openLocked(t testing.TB, wait time.Duration) *sql.DB {
	t.Helper()
	st, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "w.db"), "normal")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	lockOf(t, st.DB).wait = wait
	return st.DB
}

// lockOf digs the writer lock out of a store's pool through one connection.
func lockOf(t testing.TB, db *sql.DB) *writerLock {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var l *writerLock
	if err := conn.Raw(func(c any) error {
		lc, ok := c.(*lockingConn)
		if !ok {
			return fmt.Errorf("connection is %T, not a lockingConn", c)
		}
		l = lc.lock
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return l
}

// openWithTx is openLocked with a write transaction open until the test ends.
func openWithTx(t *testing.T, wait time.Duration) (*sql.DB, *sql.Tx) {
	t.Helper()
	db := openLocked(t, wait)
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback() })
	return db, tx
}

func insertSetting(ctx context.Context, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, key string) error {
	_, err := db.ExecContext(ctx, "INSERT INTO settings (`key`, `value`) VALUES (?, ?)", key, "v")
	return err
}

func TestConcurrentWritersAllCommit(t *testing.T) {
	db := openLocked(t, 30*time.Second)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8*40)
	for w := range 8 {
		wg.Go(func() {
			for i := range 40 {
				key := fmt.Sprintf("w%d-%d", w, i)
				if i%2 == 0 { // a transaction
					tx, err := db.BeginTx(ctx, nil)
					if err != nil {
						errs <- err
						continue
					}
					if err := insertSetting(ctx, tx, key); err != nil {
						tx.Rollback()
						errs <- err
						continue
					}
					errs <- tx.Commit()
				} else { // a statement on its own
					errs <- insertSetting(ctx, db, key)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a write failed: %v", err)
		}
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM settings WHERE `key` LIKE 'w%'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 8*40 {
		t.Fatalf("%d rows committed, want %d", n, 8*40)
	}
}

func TestReadsDoNotWaitForTheWriter(t *testing.T) {
	db, tx := openWithTx(t, 30*time.Second)
	ctx := context.Background()
	if err := insertSetting(ctx, tx, "uncommitted"); err != nil {
		t.Fatal(err)
	}
	// A short deadline: a read that queued behind the open transaction would miss it.
	readCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var n int
	if err := db.QueryRowContext(readCtx, "SELECT count(*) FROM settings WHERE `key` = 'uncommitted'").Scan(&n); err != nil {
		t.Fatalf("read beside an open write transaction: %v", err)
	}
	if n != 0 {
		t.Fatalf("read saw %d uncommitted rows", n)
	}
}

func TestReadOnlyTransactionsDoNotTakeTheLock(t *testing.T) {
	db, _ := openWithTx(t, 50*time.Millisecond)
	ctx := context.Background()
	ro, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only transaction beside a write transaction: %v", err)
	}
	defer ro.Rollback()
	var n int
	if err := ro.QueryRowContext(ctx, "SELECT count(*) FROM settings").Scan(&n); err != nil {
		t.Fatal(err)
	}
}

func TestWaitingWriterHonoursItsContext(t *testing.T) {
	db, tx := openWithTx(t, 30*time.Second)
	ctx := context.Background()
	waitCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- insertSetting(waitCtx, db, "late") }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiting write: %v, want context.Canceled", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// The lock is free again.
	if err := insertSetting(ctx, db, "after"); err != nil {
		t.Fatal(err)
	}
}

func TestWriterWaitingOnItsOwnTransactionFails(t *testing.T) {
	db, _ := openWithTx(t, 50*time.Millisecond)
	ctx := context.Background()
	// Outside the transaction, on another connection: it can never get the lock.
	if err := insertSetting(ctx, db, "self"); !errors.Is(err, errWriterLockTimeout) {
		t.Fatalf("write behind its own transaction: %v, want %v", err, errWriterLockTimeout)
	}
}

func TestIsRead(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT 1":                              true,
		"  select * FROM t":                     true,
		"(SELECT 1) UNION (SELECT 2)":           true,
		"EXPLAIN QUERY PLAN SELECT 1":           true,
		"INSERT INTO t VALUES (1) RETURNING id": false,
		"UPDATE t SET a = 1":                    false,
		"WITH x AS (SELECT 1) DELETE FROM t":    false,
		"PRAGMA journal_mode=WAL":               false,
		"SEL":                                   false,
	} {
		if got := isRead(q); got != want {
			t.Errorf("isRead(%q) = %v, want %v", q, got, want)
		}
	}
}

// BenchmarkContendedWrites has one writer committing small transactions back to back (ingest
// under load) while another commits one now and then (the dispatcher recording outcomes), and
// reports how long the second one's transactions waited to begin (p50, p99, max): through the
// writer lock, and through SQLite's own busy handler on the same kind of file in the same run.
func BenchmarkContendedWrites(b *testing.B) {
	for _, mode := range []string{"writer-lock", "busy-handler"} {
		b.Run(mode, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "c.db")
			st, err := OpenSQLite(context.Background(), path, "normal")
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			if err := st.Migrate(context.Background()); err != nil {
				b.Fatal(err)
			}
			db := st.DB
			if mode == "busy-handler" {
				if db, err = sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(30000)&_pragma=synchronous(normal)&_txlock=immediate"); err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				db.SetMaxOpenConns(8)
			}
			write := func(key string) (waited time.Duration, err error) {
				began := time.Now()
				tx, err := db.Begin()
				if err != nil {
					return 0, err
				}
				waited = time.Since(began)
				if err := insertSetting(context.Background(), tx, key); err != nil {
					tx.Rollback()
					return 0, err
				}
				return waited, tx.Commit()
			}
			stop := make(chan struct{})
			var steady sync.WaitGroup
			steady.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := write(fmt.Sprintf("steady-%d", i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			waits := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				waited, err := write(fmt.Sprintf("measured-%d", i))
				if err != nil {
					b.Fatal(err)
				}
				waits = append(waits, waited)
				time.Sleep(200 * time.Microsecond)
			}
			b.StopTimer()
			close(stop)
			steady.Wait()
			slices.Sort(waits)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
			b.ReportMetric(ms(waits[len(waits)/2]), "p50-wait-ms")
			b.ReportMetric(ms(waits[len(waits)*99/100]), "p99-wait-ms")
			b.ReportMetric(ms(waits[len(waits)-1]), "max-wait-ms")
		})
	}
}
