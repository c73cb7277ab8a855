package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestTokenCommands(t *testing.T) {
	dir := t.TempDir()
	env := func(k string) string {
		if k == "EVENTGATE_DATA_DIR" {
			return dir
		}
		return ""
	}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := Main(context.Background(), args, env, &out, &errOut)
		return out.String(), err
	}
	secret, err := run("token", "create", "--name", "bot", "--scope", "EVENTS_PUBLISH", "--scope", "webhooks_read")
	if err != nil {
		t.Fatal(err)
	}
	if secret = strings.TrimSpace(secret); !strings.HasPrefix(secret, "egt_") || len(secret) != 47 {
		t.Fatalf("got secret %q, want egt_ + 43 characters", secret)
	}
	list, err := run("token", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list, "bot") || !strings.Contains(list, "EVENTS_PUBLISH,WEBHOOKS_READ") || !strings.Contains(list, secret[:12]) || strings.Contains(list, secret) {
		t.Fatalf("list shows:\n%s", list)
	}
	if _, err := run("token", "revoke", "1"); err != nil {
		t.Fatal(err)
	}
	if list, _ = run("token", "list"); !strings.Contains(list, "revoked") {
		t.Fatalf("after revoke, list shows:\n%s", list)
	}
	if _, err := run("token", "create", "--name", "x", "--scope", "SUPERUSER"); err == nil || ExitCode(err) != 2 {
		t.Fatalf("unknown scope: got %v, want a usage error", err)
	}
	if _, err := run("frobnicate"); ExitCode(err) != 2 {
		t.Fatalf("unknown command: got %v, want a usage error", err)
	}
}
