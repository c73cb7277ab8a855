// Package pgtest gives tests a fresh PostgreSQL schema. The server comes from
// EVENTGATE_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test). Without a
// reachable server the PostgreSQL half of the suite is skipped with one line — or, with CI=true,
// fails, so CI can never pass by skipping it.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
)

// DefaultURL is the PostgreSQL the suite uses when EVENTGATE_TEST_DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test"

var (
	probeOnce sync.Once
	probeErr  error
)

// BaseURL returns the server URL for tests.
func BaseURL() string {
	if u := os.Getenv("EVENTGATE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Available reports whether PostgreSQL answers (checked once per test binary).
func Available() error {
	probeOnce.Do(func() {
		db, err := sql.Open("pgx", BaseURL())
		if err != nil {
			probeErr = err
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		probeErr = db.PingContext(ctx)
		if probeErr != nil && os.Getenv("CI") != "true" {
			fmt.Fprintf(os.Stderr, "PostgreSQL at %s unreachable: skipping the PostgreSQL tests (%v)\n", BaseURL(), probeErr)
		}
	})
	return probeErr
}

// Schema creates a fresh schema, dropped when the test ends, and returns a URL whose
// search_path points at it. It skips the test when PostgreSQL is unreachable (fails under CI=true).
func Schema(t testing.TB) string {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s is required under CI=true: %v", BaseURL(), err)
		}
		t.SkipNow()
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	db, err := sql.Open("pgx", BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE SCHEMA " + name); err != nil {
		db.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer db.Close()
		if _, err := db.Exec("DROP SCHEMA " + name + " CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", name, err)
		}
	})
	u, err := url.Parse(BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}
