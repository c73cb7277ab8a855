// Package cli is eventgate's command line: `serve` (default), `migrate`, and `token
// create|list|revoke`. main only calls Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/apitoken"
	"github.com/eventgate/eventgate/server"
	"github.com/eventgate/eventgate/server/auth"
	"github.com/eventgate/eventgate/server/config"
	"github.com/eventgate/eventgate/server/gctune"
	"github.com/eventgate/eventgate/server/store"
)

// usageError marks errors in how the command was called (exit code 2).
type usageError struct{ error }

// ExitCode is the process exit code for an error returned by Main.
func ExitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

const usage = `Usage: eventgate [serve] [flags]       run the gateway (see eventgate serve --help)
       eventgate migrate [flags]       apply database migrations and exit
       eventgate token create --name N --scope S [--scope S…] [--event-type T…] [--expires-in D]
       eventgate token list
       eventgate token revoke ID
Every command reads EVENTGATE_* variables; serve --help lists them.`

// Main runs the command line.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := config.Load(args, getenv, stderr)
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		if err != nil {
			return usageError{err}
		}
		if getenv("GOGC") == "" { // the user's own GOGC wins
			go gctune.Run(ctx, gctune.DefaultFloor)
		}
		return server.Run(ctx, cfg, newLogger(cfg, stderr), stdout)
	case "migrate":
		cfg, err := config.Load(args, getenv, stderr)
		if err != nil {
			return usageError{err}
		}
		st, err := openStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.Migrate(ctx); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "migrations applied")
		return nil
	case "token":
		return tokenCommand(ctx, args, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return usageError{fmt.Errorf("unknown command %q\n%s", cmd, usage)}
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func openStore(ctx context.Context, cfg *config.Config) (*store.Store, error) {
	return store.Open(ctx, store.Options{DatabaseURL: cfg.DatabaseURL, DataDir: cfg.DataDir, SQLiteSync: cfg.SQLiteSync})
}

// listFlag collects a repeatable flag; each value may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

func tokenCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{errors.New(usage)}
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("eventgate token "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "", "data folder (default EVENTGATE_DATA_DIR or ./data)")
	dbURL := fs.String("database-url", "", "PostgreSQL URL (default EVENTGATE_DATABASE_URL)")
	name := fs.String("name", "", "token name")
	var scopes, types listFlag
	fs.Var(&scopes, "scope", "scope: WEBHOOKS_READ, WEBHOOKS_WRITE, EVENTS_PUBLISH, EVENTS_SUBSCRIBE or ADMIN (repeatable)")
	fs.Var(&types, "event-type", "limit the token to this event type (repeatable)")
	expiresIn := fs.Duration("expires-in", 0, "lifetime of the token, e.g. 720h (default: no expiry)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	var cfgArgs []string
	if *dataDir != "" {
		cfgArgs = append(cfgArgs, "--data-dir", *dataDir)
	}
	if *dbURL != "" {
		cfgArgs = append(cfgArgs, "--database-url", *dbURL)
	}
	cfg, err := config.Load(cfgArgs, getenv, stderr)
	if err != nil {
		return usageError{err}
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	svc := auth.NewService(st.Client, slog.New(slog.DiscardHandler))
	switch sub {
	case "create":
		in := auth.CreateInput{Name: *name}
		for _, s := range scopes {
			s = strings.ToUpper(s)
			if !validScope(s) {
				return usageError{fmt.Errorf("unknown scope %q", s)}
			}
			in.Scopes = append(in.Scopes, s)
		}
		if len(types) > 0 {
			in.EventTypes = types
		}
		if *expiresIn > 0 {
			t := time.Now().Add(*expiresIn).UTC()
			in.ExpiresAt = &t
		}
		tok, secret, err := svc.Create(ctx, nil, in)
		if err != nil {
			return usageError{err}
		}
		fmt.Fprintf(stderr, "created token %d (%s) with scopes %s; the secret is shown once:\n", tok.ID, tok.Name, strings.Join(tok.Scopes, ", "))
		fmt.Fprintln(stdout, secret)
		return nil
	case "list":
		toks, err := st.Client.ApiToken.Query().Order(ent.Asc(apitoken.FieldID)).All(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tSCOPES\tSTATE\tCREATED")
		for _, t := range toks {
			state := "active"
			switch {
			case t.RevokedAt != nil:
				state = "revoked"
			case t.ExpiresAt != nil && t.ExpiresAt.Before(time.Now()):
				state = "expired"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Prefix, strings.Join(t.Scopes, ","), state, t.CreatedAt.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return usageError{errors.New("usage: eventgate token revoke ID")}
		}
		id, err := strconv.Atoi(fs.Arg(0))
		if err != nil {
			return usageError{fmt.Errorf("token id %q is not a number", fs.Arg(0))}
		}
		if _, err := svc.Revoke(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "token %d revoked\n", id)
		return nil
	default:
		return usageError{fmt.Errorf("unknown token command %q\n%s", sub, usage)}
	}
}

func validScope(s string) bool {
	switch s {
	case auth.ScopeWebhooksRead, auth.ScopeWebhooksWrite, auth.ScopeEventsPublish, auth.ScopeEventsSubscribe, auth.ScopeAdmin:
		return true
	}
	return false
}
