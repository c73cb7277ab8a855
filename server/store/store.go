// Package store opens eventgate's database — an SQLite file (the embedded default) or PostgreSQL —
// applies the versioned migrations, and hands out the ent client.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver, registered as "pgx"
	_ "modernc.org/sqlite"             // pure-Go SQLite driver, registered as "sqlite"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/migrations"
)

// Options say which database to open.
type Options struct {
	// DatabaseURL selects PostgreSQL when set (postgres://…).
	DatabaseURL string
	// DataDir holds the SQLite file when DatabaseURL is empty.
	DataDir string
	// SQLiteSync is "full" (an acknowledged write survives power loss) or "normal".
	SQLiteSync string
	// MaxConns bounds the PostgreSQL connection pool.
	MaxConns int
}

// Store is an open database.
type Store struct {
	Client  *ent.Client
	DB      *sql.DB
	Dialect string
	// URL is the PostgreSQL connection string (for the notification listener); empty for SQLite.
	URL string
}

// Open connects to the database. It does not migrate; call Migrate.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.DatabaseURL != "" {
		return OpenPostgres(ctx, opts.DatabaseURL, opts.MaxConns)
	}
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	return OpenSQLite(ctx, filepath.Join(opts.DataDir, "eventgate.db"), opts.SQLiteSync)
}

// busyTimeout bounds a writer's wait for SQLite's write lock.
const busyTimeout = 30 * time.Second

// OpenSQLite opens (creating if needed) the SQLite file at path.
//
// Every transaction begins IMMEDIATE, so concurrent writers queue for the single write lock instead
// of failing with SQLITE_BUSY: this process's writers in the writer lock (writerlock.go), other
// processes in SQLite's busy handler. WAL lets readers run beside the writer.
// Temporary structures (statement journals of multi-row updates) stay in memory, not in files.
func OpenSQLite(ctx context.Context, path, syncMode string) (*Store, error) {
	if syncMode == "" {
		syncMode = "full"
	}
	if syncMode != "full" && syncMode != "normal" {
		return nil, fmt.Errorf("sqlite sync mode %q: want full or normal", syncMode)
	}
	dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(" + strconv.FormatInt(busyTimeout.Milliseconds(), 10) + ")" +
		"&_pragma=synchronous(" + syncMode + ")&_pragma=temp_store(memory)&_txlock=immediate&_time_format=sqlite"
	// The registered driver, to open connections through the writer lock.
	probe, err := sql.Open("sqlite", "")
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	drv := probe.Driver()
	probe.Close()
	db := sql.OpenDB(&lockingConnector{dsn: dsn, driver: drv, lock: newWriterLock(busyTimeout)})
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return &Store{Client: ent.NewClient(ent.Driver(entsql.OpenDB(dialect.SQLite, db))), DB: db, Dialect: dialect.SQLite}, nil
}

// OpenPostgres connects to PostgreSQL (driver pgx). The URL may carry search_path to use a schema.
func OpenPostgres(ctx context.Context, url string, maxConns int) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if maxConns <= 0 {
		maxConns = 20
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	drv := entsql.OpenDB(dialect.Postgres, db)
	return &Store{Client: ent.NewClient(ent.Driver(drv)), DB: db, Dialect: dialect.Postgres, URL: url}, nil
}

// IsPostgres reports whether the store is PostgreSQL (several instances may share it).
func (s *Store) IsPostgres() bool { return s.Dialect == dialect.Postgres }

// WithLock runs f while holding an instance-wide lock: a PostgreSQL advisory lock, so instances
// starting together migrate and bootstrap one at a time. SQLite has one instance; f just runs.
func (s *Store) WithLock(ctx context.Context, f func() error) error {
	if !s.IsPostgres() {
		return f()
	}
	conn, err := s.DB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("advisory lock: %w", err)
	}
	defer conn.Close()
	// The key is derived from the schema, so databases shared by several schemas (tests) do not
	// serialise each other.
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(hashtext('eventgate:' || current_schema()))"); err != nil {
		return fmt.Errorf("advisory lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext('eventgate:' || current_schema()))")
	return f()
}

// Close closes the database.
func (s *Store) Close() error { return s.Client.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.DB.PingContext(ctx) }

// migrationsTable records which migration files have been applied.
const migrationsTable = "schema_migrations"

// Migrate applies every migration file not applied yet, each in its own transaction.
func (s *Store) Migrate(ctx context.Context) error {
	files, err := s.migrationFiles()
	if err != nil {
		return err
	}
	if _, err := s.DB.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+migrationsTable+
		" (version TEXT NOT NULL PRIMARY KEY, applied_at TEXT NOT NULL)"); err != nil {
		return fmt.Errorf("create %s: %w", migrationsTable, err)
	}
	applied, err := s.appliedVersions(ctx)
	if err != nil {
		return err
	}
	for _, name := range files {
		version := strings.TrimSuffix(name, ".sql")
		if applied[version] {
			continue
		}
		body, err := fs.ReadFile(migrations.FS, s.migrationsDir()+"/"+name)
		if err != nil {
			return fmt.Errorf("read migration %s: %w", name, err)
		}
		if err := s.applyMigration(ctx, version, string(body)); err != nil {
			return err
		}
	}
	return nil
}

// Pending reports the migration versions not applied yet (readiness check).
func (s *Store) Pending(ctx context.Context) ([]string, error) {
	files, err := s.migrationFiles()
	if err != nil {
		return nil, err
	}
	applied, err := s.appliedVersions(ctx)
	if err != nil {
		return nil, err
	}
	var pending []string
	for _, name := range files {
		if v := strings.TrimSuffix(name, ".sql"); !applied[v] {
			pending = append(pending, v)
		}
	}
	return pending, nil
}

// migrationsDir is the folder of migrations/ for this dialect.
func (s *Store) migrationsDir() string {
	if s.Dialect == dialect.Postgres {
		return "postgres"
	}
	return "sqlite"
}

func (s *Store) migrationFiles() ([]string, error) {
	entries, err := fs.ReadDir(migrations.FS, s.migrationsDir())
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func (s *Store) appliedVersions(ctx context.Context) (map[string]bool, error) {
	rows, err := s.DB.QueryContext(ctx, "SELECT version FROM "+migrationsTable)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", migrationsTable, err)
	}
	defer rows.Close()
	applied := map[string]bool{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read %s: %w", migrationsTable, err)
		}
		applied[v] = true
	}
	return applied, rows.Err()
}

func (s *Store) applyMigration(ctx context.Context, version, body string) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: %w", version, err)
	}
	defer tx.Rollback()
	for _, stmt := range splitStatements(body) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("migration %s: %w", version, err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.rebind("INSERT INTO "+migrationsTable+" (version, applied_at) VALUES (?, ?)"),
		version, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return fmt.Errorf("record migration %s: %w", version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit migration %s: %w", version, err)
	}
	return nil
}

// splitStatements splits a migration file on semicolons at line ends, dropping comment lines.
// Migration files keep one statement per line group, so no SQL parser is needed.
func splitStatements(body string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteString("\n")
		if strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		stmts = append(stmts, rest)
	}
	return stmts
}

// rebind turns ? placeholders into $n for PostgreSQL.
func (s *Store) rebind(query string) string {
	if s.Dialect != dialect.Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
