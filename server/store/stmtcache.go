package store

import (
	"container/list"
	"context"
	"database/sql/driver"
	"strings"
)

// The SQLite driver parses every statement it is given through database/sql's Exec and Query
// anew: for a small INSERT that parse costs as much as running it (13 % of ingest's CPU). Each
// connection therefore keeps its most recently used statements prepared and runs them again with
// new arguments; SQLite re-prepares a kept statement by itself if the schema changes.

// stmtCacheSize bounds the statements kept per connection. Statements whose text varies with
// their arguments (IN lists, bulk inserts) take slots and fall out in LRU order; the dispatcher
// gives its batches a few lengths only, which takes about a hundred.
const stmtCacheSize = 160

// cachedStmt is a kept statement. busy is set while a run of it has rows open: a second run of the
// same text meanwhile prepares a statement of its own.
type cachedStmt struct {
	query   string
	stmt    statement
	busy    bool
	evicted bool // dropped from the cache while busy: close it when its rows are closed
}

// stmtCache is a connection's kept statements, most recently used first.
type stmtCache struct {
	byQuery map[string]*list.Element
	order   list.List
}

// statement is what a kept statement must do besides driver.Stmt.
type statement interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// get returns the kept statement for query, preparing and keeping it on first use; nil when it
// cannot be used (a script of several statements, one already running, a failed prepare — the
// caller then runs the query the ordinary way).
func (sc *stmtCache) get(ctx context.Context, conn driver.ConnPrepareContext, query string) *cachedStmt {
	if strings.Contains(query, ";") {
		return nil
	}
	if sc.byQuery == nil {
		sc.byQuery = make(map[string]*list.Element, stmtCacheSize)
	}
	if el, ok := sc.byQuery[query]; ok {
		cs := el.Value.(*cachedStmt)
		if cs.busy {
			return nil
		}
		sc.order.MoveToFront(el)
		return cs
	}
	prepared, err := conn.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	st, ok := prepared.(statement)
	if !ok {
		prepared.Close()
		return nil
	}
	cs := &cachedStmt{query: query, stmt: st}
	sc.byQuery[query] = sc.order.PushFront(cs)
	if sc.order.Len() > stmtCacheSize {
		old := sc.order.Back()
		sc.order.Remove(old)
		victim := old.Value.(*cachedStmt)
		delete(sc.byQuery, victim.query)
		if victim.busy {
			victim.evicted = true
		} else {
			victim.stmt.Close()
		}
	}
	return cs
}

// closeAll closes the kept statements (the connection is closing).
func (sc *stmtCache) closeAll() {
	for el := sc.order.Front(); el != nil; el = el.Next() {
		el.Value.(*cachedStmt).stmt.Close()
	}
	sc.order.Init()
	sc.byQuery = nil
}

func (cs *cachedStmt) exec(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return cs.stmt.ExecContext(ctx, args)
}

// run runs the statement as a query; it stays busy until the rows are closed.
func (cs *cachedStmt) run(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := cs.stmt.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	cs.busy = true
	return &cachedRows{Rows: rows, stmt: cs}, nil
}

// cachedRows frees its statement for the next run when closed.
type cachedRows struct {
	driver.Rows
	stmt   *cachedStmt
	closed bool
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if !r.closed {
		r.closed = true
		r.stmt.busy = false
		if r.stmt.evicted {
			r.stmt.stmt.Close()
		}
	}
	return err
}
