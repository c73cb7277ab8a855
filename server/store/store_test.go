package store

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"entgo.io/ent/dialect/sql/schema"

	"github.com/eventgate/eventgate/server/store/pgtest"
)

// TestMigrationsMatchEntSchema applies the SQL migrations to an empty database and asks ent what it
// would still change: nothing, or the migrations and the ent schema have drifted apart.
func TestMigrationsMatchEntSchema(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "m.db"), "normal")
		if err != nil {
			t.Fatal(err)
		}
		assertMigrationsMatch(t, st)
	})
	t.Run("postgres", func(t *testing.T) {
		st, err := OpenPostgres(context.Background(), pgtest.Schema(t), 4)
		if err != nil {
			t.Fatal(err)
		}
		assertMigrationsMatch(t, st)
	})
}

func assertMigrationsMatch(t *testing.T, st *Store) {
	ctx := context.Background()
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var diff bytes.Buffer
	if err := st.Client.Schema.WriteTo(ctx, &diff, schema.WithDropColumn(true), schema.WithDropIndex(true)); err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, line := range strings.Split(diff.String(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "PRAGMA") || line == "BEGIN;" || line == "COMMIT;" {
			continue
		}
		changes = append(changes, line)
	}
	if len(changes) > 0 {
		t.Fatalf("ent would still change the migrated schema:\n%s", strings.Join(changes, "\n"))
	}
	pending, err := st.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 0 {
		t.Fatalf("pending after Migrate: %v", pending)
	}
	// Applying again is a no-op.
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
}

func TestOpenRejectsUnknownSyncMode(t *testing.T) {
	if _, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "x.db"), "off"); err == nil {
		t.Fatal("got no error for sync mode off")
	}
}

// TestConcurrentMigrateOnPostgres starts several migrations at once, as instances starting
// together do: the advisory lock lets exactly one apply each file.
func TestConcurrentMigrateOnPostgres(t *testing.T) {
	url := pgtest.Schema(t)
	ctx := context.Background()
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			st, err := OpenPostgres(ctx, url, 2)
			if err != nil {
				errs <- err
				return
			}
			defer st.Close()
			errs <- st.WithLock(ctx, func() error { return st.Migrate(ctx) })
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent migrate: %v", err)
		}
	}
}
