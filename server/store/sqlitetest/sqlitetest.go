// Package sqlitetest gives tests a migrated SQLite store: a real file in the test's temp dir,
// closed when the test ends.
package sqlitetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/eventgate/eventgate/server/store"
)

// Open opens and migrates an SQLite file with the given synchronous mode ("full" or "normal").
func Open(t testing.TB, sync string) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "eventgate.db"), sync)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}
