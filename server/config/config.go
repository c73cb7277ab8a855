// Package config holds eventgate's settings: one struct, filled from flags and EVENTGATE_*
// environment variables (flags win), with defaults in one place and a Validate that names the
// offending setting.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// defaultRetrySchedule is the wait before each retry (DESIGN.md §6): ten attempts in all.
const defaultRetrySchedule = "5s,5m,30m,2h,5h,10h,14h,20h,24h"

// Config is every setting of `eventgate serve`.
type Config struct {
	Addr               string
	DataDir            string
	DatabaseURL        string
	DatabaseMaxConns   int
	AdminToken         string
	SecretKey          string
	AllowedTargets     []netip.Prefix
	RetrySchedule      []time.Duration
	AllowedOrigins     []string
	EventRetention     time.Duration
	SubscriptionBuffer int
	PublishRate        float64
	PublishBurst       int
	SQLiteSync         string
	LogFormat          string
	LogLevel           string
	Introspection      bool
	MaxDepth           int
	MaxComplexity      int
	Workers            int
	DeliveryLease      time.Duration
	ShutdownTimeout    time.Duration
	MetricsAddr        string
}

// setting describes one configuration entry: its flag, its variable, its default and its help.
type setting struct {
	flag, env, def, help string
	apply                func(c *Config, v string) error
}

func settings() []setting {
	return []setting{
		{"addr", "EVENTGATE_ADDR", "127.0.0.1:8080", "listen address", func(c *Config, v string) error { c.Addr = v; return nil }},
		{"data-dir", "EVENTGATE_DATA_DIR", "./data", "folder for the SQLite file and the generated secret key", func(c *Config, v string) error { c.DataDir = v; return nil }},
		{"database-url", "EVENTGATE_DATABASE_URL", "", "postgres://… to use PostgreSQL instead of SQLite (default: SQLite in the data dir)", func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
		{"database-max-conns", "EVENTGATE_DATABASE_MAX_CONNS", "20", "PostgreSQL connection pool size per instance", intInto(func(c *Config) *int { return &c.DatabaseMaxConns })},
		{"admin-token", "EVENTGATE_ADMIN_TOKEN", "", "bootstrap admin token to create on an empty database, 20–256 printable characters (default: generated and printed once)", func(c *Config, v string) error { c.AdminToken = v; return nil }},
		{"secret-key", "EVENTGATE_SECRET_KEY", "", "base64 32-byte key that encrypts webhook secrets at rest (default: key file in the data dir)", func(c *Config, v string) error { c.SecretKey = v; return nil }},
		{"allowed-targets", "EVENTGATE_ALLOWED_TARGETS", "", "comma-separated CIDRs webhooks may reach despite the refused ranges (default: none)", parseTargets},
		{"retry-schedule", "EVENTGATE_RETRY_SCHEDULE", defaultRetrySchedule, "comma-separated waits between delivery attempts (Go durations)", parseSchedule},
		{"allowed-origins", "EVENTGATE_ALLOWED_ORIGINS", "", "comma-separated browser origins allowed for CORS and WebSockets (default: same origin)", func(c *Config, v string) error { c.AllowedOrigins = splitList(v); return nil }},
		{"event-retention", "EVENTGATE_EVENT_RETENTION", "720h", "how long events and their deliveries are kept", durationInto(func(c *Config) *time.Duration { return &c.EventRetention })},
		{"subscription-buffer", "EVENTGATE_SUBSCRIPTION_BUFFER", "256", "outbound frames queued per subscription", intInto(func(c *Config) *int { return &c.SubscriptionBuffer })},
		{"publish-rate", "EVENTGATE_PUBLISH_RATE", "1000", "events per second per token (burst is twice this)", parseRate},
		{"sqlite-sync", "EVENTGATE_SQLITE_SYNC", "full", "SQLite synchronous mode: full or normal", func(c *Config, v string) error { c.SQLiteSync = v; return nil }},
		{"log-format", "EVENTGATE_LOG_FORMAT", "text", "log format: text or json", func(c *Config, v string) error { c.LogFormat = v; return nil }},
		{"log-level", "EVENTGATE_LOG_LEVEL", "info", "log level: debug, info, warn or error", func(c *Config, v string) error { c.LogLevel = v; return nil }},
		{"introspection", "EVENTGATE_INTROSPECTION", "true", "allow GraphQL introspection", boolInto(func(c *Config) *bool { return &c.Introspection })},
		{"max-depth", "EVENTGATE_MAX_DEPTH", "15", "maximum GraphQL query depth", intInto(func(c *Config) *int { return &c.MaxDepth })},
		{"max-complexity", "EVENTGATE_MAX_COMPLEXITY", "5000", "maximum GraphQL query complexity", intInto(func(c *Config) *int { return &c.MaxComplexity })},
		{"workers", "EVENTGATE_WORKERS", "16", "webhook requests in flight at once", intInto(func(c *Config) *int { return &c.Workers })},
		{"delivery-lease", "EVENTGATE_DELIVERY_LEASE", "2m", "how long a claimed delivery is held before another instance (or a restart after a crash) may take it over", durationInto(func(c *Config) *time.Duration { return &c.DeliveryLease })},
		{"shutdown-timeout", "EVENTGATE_SHUTDOWN_TIMEOUT", "10s", "how long shutdown waits for in-flight work", durationInto(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
		{"metrics-addr", "EVENTGATE_METRICS_ADDR", "", "serve /metrics on this address instead of the main one; \"off\" disables it (default: the main address)", func(c *Config, v string) error { c.MetricsAddr = v; return nil }},
	}
}

// Load parses args (without the program and subcommand names) over the environment.
// It returns flag.ErrHelp after printing usage to out when asked for help.
func Load(args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("eventgate serve", flag.ContinueOnError)
	fs.SetOutput(out)
	values := map[string]*string{}
	for _, s := range settings() {
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		values[s.flag] = fs.String(s.flag, def, s.help+" ["+s.env+"]")
	}
	fs.Usage = func() {
		fmt.Fprintln(out, "Usage: eventgate serve [flags]\n\nEvery flag can also be set with its environment variable (in brackets); flags win.")
		fmt.Fprintln(out)
		for _, s := range settings() {
			switch {
			case s.def != "":
				fmt.Fprintf(out, "  --%s  %s\n      %s (default %s)\n", s.flag, s.env, s.help, s.def)
			case strings.Contains(s.help, "default"):
				fmt.Fprintf(out, "  --%s  %s\n      %s\n", s.flag, s.env, s.help)
			default:
				fmt.Fprintf(out, "  --%s  %s\n      %s (default empty)\n", s.flag, s.env, s.help)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c := &Config{}
	for _, s := range settings() {
		if err := s.apply(c, strings.TrimSpace(*values[s.flag])); err != nil {
			return nil, fmt.Errorf("%s (--%s): %w", s.env, s.flag, err)
		}
	}
	return c, c.Validate()
}

// FromEnv loads the configuration from the process environment alone.
func FromEnv() (*Config, error) { return Load(nil, os.Getenv, io.Discard) }

// Validate checks the settings together.
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("EVENTGATE_ADDR: must not be empty"))
	}
	if c.DatabaseURL == "" && c.DataDir == "" {
		errs = append(errs, errors.New("EVENTGATE_DATA_DIR: must not be empty when EVENTGATE_DATABASE_URL is not set"))
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		errs = append(errs, errors.New("EVENTGATE_DATABASE_URL: must start with postgres://"))
	}
	if c.AdminToken != "" && !validAdminToken(c.AdminToken) {
		errs = append(errs, errors.New("EVENTGATE_ADMIN_TOKEN: must be 20–256 printable characters"))
	}
	if c.SQLiteSync != "full" && c.SQLiteSync != "normal" {
		errs = append(errs, fmt.Errorf("EVENTGATE_SQLITE_SYNC: %q is not full or normal", c.SQLiteSync))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("EVENTGATE_LOG_FORMAT: %q is not text or json", c.LogFormat))
	}
	if c.EventRetention <= 0 {
		errs = append(errs, errors.New("EVENTGATE_EVENT_RETENTION: must be positive"))
	}
	if c.SubscriptionBuffer < 1 {
		errs = append(errs, errors.New("EVENTGATE_SUBSCRIPTION_BUFFER: must be at least 1"))
	}
	if c.PublishRate <= 0 {
		errs = append(errs, errors.New("EVENTGATE_PUBLISH_RATE: must be positive"))
	}
	if c.MaxDepth < 1 || c.MaxComplexity < 1 {
		errs = append(errs, errors.New("EVENTGATE_MAX_DEPTH and EVENTGATE_MAX_COMPLEXITY: must be positive"))
	}
	if c.DeliveryLease < time.Second {
		errs = append(errs, errors.New("EVENTGATE_DELIVERY_LEASE: must be at least 1s"))
	}
	if c.Workers < 1 {
		errs = append(errs, errors.New("EVENTGATE_WORKERS: must be at least 1"))
	}
	return errors.Join(errs...)
}

// validAdminToken accepts 20–256 printable ASCII characters.
func validAdminToken(s string) bool {
	if len(s) < 20 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func splitList(v string) []string {
	var out []string
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func parseTargets(c *Config, v string) error {
	c.AllowedTargets = nil
	for _, part := range splitList(v) {
		if !strings.Contains(part, "/") {
			addr, err := netip.ParseAddr(part)
			if err != nil {
				return fmt.Errorf("%q is not a CIDR or IP address", part)
			}
			c.AllowedTargets = append(c.AllowedTargets, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR", part)
		}
		c.AllowedTargets = append(c.AllowedTargets, p.Masked())
	}
	return nil
}

func parseSchedule(c *Config, v string) error {
	c.RetrySchedule = nil
	for _, part := range splitList(v) {
		d, err := time.ParseDuration(part)
		if err != nil || d < 0 {
			return fmt.Errorf("%q is not a non-negative Go duration", part)
		}
		c.RetrySchedule = append(c.RetrySchedule, d)
	}
	return nil
}

func parseRate(c *Config, v string) error {
	r, err := strconv.ParseFloat(v, 64)
	if err != nil || r <= 0 {
		return fmt.Errorf("%q is not a positive number", v)
	}
	c.PublishRate = r
	c.PublishBurst = int(2 * r)
	if c.PublishBurst < 1 {
		c.PublishBurst = 1
	}
	return nil
}

func durationInto(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a Go duration", v)
		}
		*field(c) = d
		return nil
	}
}

func intInto(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not an integer", v)
		}
		*field(c) = n
		return nil
	}
}

func boolInto(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*field(c) = b
		return nil
	}
}
