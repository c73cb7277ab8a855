package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"
	"time"
)

// SQLite has one write lock per file. A writer that finds it taken waits in SQLite's busy handler,
// which polls: it sleeps 1, 2, 5, 10 … up to 100 ms between tries and does not wake when the lock
// is released. Under steady writes (ingest group commits beside the dispatcher's batches) a writer
// can sleep tens of milliseconds per try while the lock sits free, and can lose to a writer that
// came later. writerLock queues this process's writers in Go instead, first come first served, and
// hands the lock over the moment it is released; SQLite's busy handler is then only met by other
// processes sharing the file (the CLI, a read-only baseline).
//
// Every transaction but a read-only one takes it (transactions begin IMMEDIATE, so each one is a
// writer), and so does every statement outside a transaction that is not a plain read. Two ways
// around it are not used here and must stay unused: transactions begun with a BEGIN statement
// instead of BeginTx, and statements prepared outside a transaction (they wait in SQLite's busy
// handler, as before).
type writerLock struct {
	slot chan struct{} // capacity 1: held while a writer runs
	// wait bounds a wait for the lock, like the busy timeout it stands in for: a writer that
	// waits on a transaction its own goroutine holds fails instead of hanging.
	wait time.Duration
}

func newWriterLock(wait time.Duration) *writerLock {
	return &writerLock{slot: make(chan struct{}, 1), wait: wait}
}

// errWriterLockTimeout is returned when the lock was not free within the wait.
var errWriterLockTimeout = errors.New("database is locked: another write did not finish in time")

func (l *writerLock) lock(ctx context.Context) error {
	select {
	case l.slot <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(l.wait)
	defer t.Stop()
	select {
	case l.slot <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errWriterLockTimeout
	}
}

func (l *writerLock) unlock() { <-l.slot }

// isRead says whether a statement outside a transaction only reads. Anything else (including
// WITH, which may write, and PRAGMA) is treated as a write.
func isRead(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	for _, kw := range []string{"SELECT", "EXPLAIN"} {
		if len(q) >= len(kw) && strings.EqualFold(q[:len(kw)], kw) {
			return true
		}
	}
	return false
}

// lockingConnector opens SQLite connections that take the writer lock.
type lockingConnector struct {
	dsn    string
	driver driver.Driver
	lock   *writerLock
}

func (c *lockingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.driver.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(sqliteConn)
	if !ok {
		conn.Close()
		return nil, errors.New("sqlite driver connection lacks the context methods")
	}
	return &lockingConn{sqliteConn: inner, lock: c.lock}, nil
}

func (c *lockingConnector) Driver() driver.Driver { return c.driver }

// sqliteConn is what the SQLite driver's connections implement and lockingConn relies on.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// lockingConn is one connection: it takes the writer lock as above and keeps its recently used
// statements prepared (stmtcache.go). database/sql serialises the use of a connection (its
// rollback of a cancelled transaction included) under the connection's own mutex, so inTx needs
// no guard.
type lockingConn struct {
	sqliteConn // Prepare, PrepareContext, Ping, ResetSession and IsValid go straight through
	lock       *writerLock
	inTx       bool // the lock is held by this connection's transaction
	stmts      stmtCache
}

func (c *lockingConn) Close() error {
	c.stmts.closeAll()
	return c.sqliteConn.Close()
}

func (c *lockingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *lockingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly { // a plain BEGIN: it never takes SQLite's write lock
		tx, err := c.sqliteConn.BeginTx(ctx, opts)
		if err != nil {
			return nil, err
		}
		return &lockingTx{inner: tx, conn: c}, nil
	}
	if err := c.lock.lock(ctx); err != nil {
		return nil, err
	}
	tx, err := c.sqliteConn.BeginTx(ctx, opts)
	if err != nil {
		c.lock.unlock()
		return nil, err
	}
	c.inTx = true
	return &lockingTx{inner: tx, conn: c}, nil
}

func (c *lockingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if !c.inTx && !isRead(query) {
		if err := c.lock.lock(ctx); err != nil {
			return nil, err
		}
		defer c.lock.unlock()
	}
	if cs := c.stmts.get(ctx, c.sqliteConn, query); cs != nil {
		return cs.exec(ctx, args)
	}
	return c.sqliteConn.ExecContext(ctx, query, args)
}

// query runs a query through a kept statement when it can.
func (c *lockingConn) query(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if cs := c.stmts.get(ctx, c.sqliteConn, query); cs != nil {
		return cs.run(ctx, args)
	}
	return c.sqliteConn.QueryContext(ctx, query, args)
}

func (c *lockingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if c.inTx || isRead(query) {
		return c.query(ctx, query, args)
	}
	// A write that returns rows (INSERT … RETURNING) commits when its rows are done.
	if err := c.lock.lock(ctx); err != nil {
		return nil, err
	}
	rows, err := c.query(ctx, query, args)
	if err != nil {
		c.lock.unlock()
		return nil, err
	}
	return &lockedRows{Rows: rows, unlock: c.lock.unlock}, nil
}

// lockingTx releases the writer lock, if its transaction took it, when the transaction ends,
// whichever way.
type lockingTx struct {
	inner driver.Tx
	conn  *lockingConn
}

func (t *lockingTx) Commit() error {
	defer t.end()
	return t.inner.Commit()
}

func (t *lockingTx) Rollback() error {
	defer t.end()
	return t.inner.Rollback()
}

func (t *lockingTx) end() {
	if t.conn.inTx {
		t.conn.inTx = false
		t.conn.lock.unlock()
	}
}

// lockedRows holds the writer lock until the rows are closed.
type lockedRows struct {
	driver.Rows
	unlock func()
	closed bool
}

func (r *lockedRows) Close() error {
	err := r.Rows.Close()
	if !r.closed {
		r.closed = true
		r.unlock()
	}
	return err
}
