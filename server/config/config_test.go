package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.DataDir != "./data" || c.SQLiteSync != "full" || c.SubscriptionBuffer != 256 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if len(c.RetrySchedule) != 9 || c.RetrySchedule[0] != 5*time.Second || c.RetrySchedule[8] != 24*time.Hour {
		t.Fatalf("got schedule %v, want the 9 waits of DESIGN.md §6", c.RetrySchedule)
	}
	if c.EventRetention != 720*time.Hour || c.PublishRate != 1000 || c.PublishBurst != 2000 {
		t.Fatalf("got retention %v rate %v burst %v", c.EventRetention, c.PublishRate, c.PublishBurst)
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	c, err := Load([]string{"--addr", "127.0.0.1:9999"}, env(map[string]string{
		"EVENTGATE_ADDR": "127.0.0.1:1", "EVENTGATE_RETRY_SCHEDULE": "10ms, 20ms", "EVENTGATE_ALLOWED_TARGETS": "127.0.0.0/8,::1",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9999" {
		t.Fatalf("got addr %s, want the flag's", c.Addr)
	}
	if len(c.RetrySchedule) != 2 || c.RetrySchedule[1] != 20*time.Millisecond {
		t.Fatalf("got schedule %v", c.RetrySchedule)
	}
	if len(c.AllowedTargets) != 2 || c.AllowedTargets[1].String() != "::1/128" {
		t.Fatalf("got targets %v", c.AllowedTargets)
	}
}

func TestErrorsNameTheSetting(t *testing.T) {
	tests := []struct{ env, value, want string }{
		{"EVENTGATE_RETRY_SCHEDULE", "5x", "EVENTGATE_RETRY_SCHEDULE"},
		{"EVENTGATE_ALLOWED_TARGETS", "nope", "EVENTGATE_ALLOWED_TARGETS"},
		{"EVENTGATE_SQLITE_SYNC", "off", "EVENTGATE_SQLITE_SYNC"},
		{"EVENTGATE_ADMIN_TOKEN", "short", "EVENTGATE_ADMIN_TOKEN"},
		{"EVENTGATE_SUBSCRIPTION_BUFFER", "0", "EVENTGATE_SUBSCRIPTION_BUFFER"},
		{"EVENTGATE_DATABASE_URL", "mysql://x", "EVENTGATE_DATABASE_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			_, err := Load(nil, env(map[string]string{tt.env: tt.value}), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	var out strings.Builder
	if _, err := Load([]string{"--help"}, env(nil), &out); err == nil {
		t.Fatal("got no error for --help")
	}
	for _, s := range settings() {
		if !strings.Contains(out.String(), s.env) {
			t.Errorf("help does not mention %s", s.env)
		}
	}
}
