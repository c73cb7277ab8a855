package dispatch

import (
	"context"
	stdsql "database/sql"

	"entgo.io/ent/dialect"
)

// watchDriver is an ent driver that shows every statement to before, in transactions too, and
// runs it only if before returns nil (tests count statements or inject faults with it).
type watchDriver struct {
	dialect.Driver
	before func(query string) error
}

func (w *watchDriver) Query(ctx context.Context, query string, args, v any) error {
	if err := w.before(query); err != nil {
		return err
	}
	return w.Driver.Query(ctx, query, args, v)
}

func (w *watchDriver) Exec(ctx context.Context, query string, args, v any) error {
	if err := w.before(query); err != nil {
		return err
	}
	return w.Driver.Exec(ctx, query, args, v)
}

func (w *watchDriver) Tx(ctx context.Context) (dialect.Tx, error) {
	tx, err := w.Driver.Tx(ctx)
	if err != nil {
		return nil, err
	}
	return &watchTx{Tx: tx, before: w.before}, nil
}

type watchTx struct {
	dialect.Tx
	before func(query string) error
}

func (t *watchTx) Query(ctx context.Context, query string, args, v any) error {
	if err := t.before(query); err != nil {
		return err
	}
	return t.Tx.Query(ctx, query, args, v)
}

func (t *watchTx) Exec(ctx context.Context, query string, args, v any) error {
	if err := t.before(query); err != nil {
		return err
	}
	return t.Tx.Exec(ctx, query, args, v)
}

// QueryContext and ExecContext are what ent's QueryContext and ExecContext run in a transaction
// (statements the dispatcher builds itself).
func (t *watchTx) QueryContext(ctx context.Context, query string, args ...any) (*stdsql.Rows, error) {
	if err := t.before(query); err != nil {
		return nil, err
	}
	return t.Tx.(interface {
		QueryContext(context.Context, string, ...any) (*stdsql.Rows, error)
	}).QueryContext(ctx, query, args...)
}

func (t *watchTx) ExecContext(ctx context.Context, query string, args ...any) (stdsql.Result, error) {
	if err := t.before(query); err != nil {
		return nil, err
	}
	return t.Tx.(interface {
		ExecContext(context.Context, string, ...any) (stdsql.Result, error)
	}).ExecContext(ctx, query, args...)
}
