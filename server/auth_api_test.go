package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/server/config"
	"github.com/eventgate/eventgate/server/servertest"
)

type configT = config.Config

func TestUnauthenticated(t *testing.T) {
	eg := servertest.Start(t, nil)
	for _, tc := range []struct{ name, header, url string }{
		{"no header", "", "/query"},
		{"wrong token", "Bearer egt_nope", "/query"},
		{"basic auth", "Basic dXNlcjpwYXNz", "/query"},
		{"token in URL", "", "/query?token=" + servertest.AdminToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, eg.URL+tc.url, strings.NewReader(`{"query":"{ viewer { id } }"}`))
			req.Header.Set("Content-Type", "application/json")
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Errors []struct {
					Extensions struct{ Code string }
				}
			}
			raw, _ := io.ReadAll(resp.Body)
			_ = json.Unmarshal(raw, &body)
			if resp.StatusCode != http.StatusUnauthorized || len(body.Errors) != 1 || body.Errors[0].Extensions.Code != "UNAUTHENTICATED" {
				t.Fatalf("got %d %s, want 401 with an UNAUTHENTICATED error", resp.StatusCode, raw)
			}
		})
	}
	// Public endpoints need no token.
	for _, path := range []string{"/healthz", "/readyz", "/graphiql"} {
		resp, err := http.Get(eg.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: got %d, want 200", path, resp.StatusCode)
		}
	}
}

func TestScopes(t *testing.T) {
	eg := servertest.Start(t, nil)
	tokens := map[string]string{}
	for _, s := range []string{"WEBHOOKS_READ", "WEBHOOKS_WRITE", "EVENTS_PUBLISH", "EVENTS_SUBSCRIBE", "ADMIN"} {
		tokens[s] = eg.CreateToken(strings.ToLower(s), []string{s}, nil)
	}
	ops := []struct {
		name, query string
		vars        map[string]any
		allowed     []string
	}{
		{"webhooks", `{ webhooks { total } }`, nil, []string{"WEBHOOKS_READ", "WEBHOOKS_WRITE", "ADMIN"}},
		{"webhookStats", `{ webhookStats { totalWebhooks } }`, nil, []string{"WEBHOOKS_READ", "WEBHOOKS_WRITE", "ADMIN"}},
		{"deliveries", `{ deliveries { total } }`, nil, []string{"WEBHOOKS_READ", "WEBHOOKS_WRITE", "ADMIN"}},
		{"createWebhook", createWebhook, webhookInput(nil), []string{"WEBHOOKS_WRITE", "ADMIN"}},
		{"events", `{ events { edges { cursor } } }`, nil, []string{"EVENTS_SUBSCRIBE", "ADMIN"}},
		{"publishEvent", `mutation { publishEvent(input: {type: "user.created", payload: {user_id: 1}}) { id } }`, nil, []string{"EVENTS_PUBLISH", "ADMIN"}},
		{"apiTokens", `{ apiTokens { id } }`, nil, []string{"ADMIN"}},
		{"createApiToken", `mutation { createApiToken(input: {name: "x", scopes: [EVENTS_PUBLISH]}) { secret } }`, nil, []string{"ADMIN"}},
		{"eventTypes", `{ eventTypes { name } }`, nil, []string{"WEBHOOKS_READ", "WEBHOOKS_WRITE", "EVENTS_PUBLISH", "EVENTS_SUBSCRIBE", "ADMIN"}},
		{"viewer", `{ viewer { name scopes } }`, nil, []string{"WEBHOOKS_READ", "WEBHOOKS_WRITE", "EVENTS_PUBLISH", "EVENTS_SUBSCRIBE", "ADMIN"}},
	}
	for _, op := range ops {
		for scope, token := range tokens {
			allowed := false
			for _, a := range op.allowed {
				allowed = allowed || a == scope
			}
			t.Run(op.name+"/"+scope, func(t *testing.T) {
				r := eg.GraphQL(token, op.query, op.vars)
				if r.Status != http.StatusOK {
					t.Fatalf("got status %d: %s", r.Status, r.Body)
				}
				if allowed && len(r.Errors) > 0 {
					t.Fatalf("allowed but got errors: %s", r.Body)
				}
				if !allowed && r.Code() != "FORBIDDEN" {
					t.Fatalf("got code %q, want FORBIDDEN: %s", r.Code(), r.Body)
				}
			})
		}
	}
}

func TestTokenRevocation(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		var created struct {
			CreateApiToken struct {
				Secret string
				Token  struct{ ID, Prefix string }
			}
		}
		eg.MustGraphQL(servertest.AdminToken, `mutation { createApiToken(input: {name: "bot", scopes: [WEBHOOKS_READ]}) { secret token { id prefix } } }`, nil, &created)
		tok := created.CreateApiToken
		if len(tok.Secret) != 4+43 || tok.Token.Prefix != tok.Secret[:12] {
			t.Fatalf("got secret %q prefix %q", tok.Secret, tok.Token.Prefix)
		}
		if r := eg.GraphQL(tok.Secret, `{ viewer { name } }`, nil); r.Status != http.StatusOK || len(r.Errors) > 0 {
			t.Fatalf("new token refused: %s", r.Body)
		}
		// The secret is never readable again.
		r := eg.GraphQL(servertest.AdminToken, `{ apiTokens { id name prefix scopes createdAt lastUsedAt revokedAt } }`, nil)
		if bytes.Contains(r.Body, []byte(tok.Secret)) || bytes.Contains(r.Body, []byte(servertest.AdminToken)) {
			t.Fatalf("apiTokens reveals a secret: %s", r.Body)
		}
		eg.MustGraphQL(servertest.AdminToken, `mutation($id: ID!) { revokeApiToken(id: $id) { revokedAt } }`, map[string]any{"id": tok.Token.ID}, nil)
		if r := eg.GraphQL(tok.Secret, `{ viewer { name } }`, nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("revoked token: got %d, want 401", r.Status)
		}
		assertNotInDataDir(t, eg.DataDir, tok.Secret, servertest.AdminToken)
	})
}

func TestCORS(t *testing.T) {
	eg := servertest.Start(t, func(c *configT) { c.AllowedOrigins = []string{"https://admin.example.com"} })
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, eg.URL+"/query", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	ok := preflight("https://admin.example.com")
	if ok.StatusCode != http.StatusNoContent || ok.Header.Get("Access-Control-Allow-Origin") != "https://admin.example.com" ||
		!strings.Contains(ok.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("allowed origin preflight: got %d %v", ok.StatusCode, ok.Header)
	}
	if bad := preflight("https://evil.example.com"); bad.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin got Access-Control-Allow-Origin %q", bad.Header.Get("Access-Control-Allow-Origin"))
	}
	// A WebSocket from a foreign origin is refused; from the allowed one it opens.
	if _, resp, err := eg.DialWS([]string{"graphql-transport-ws"}, http.Header{"Origin": {"https://evil.example.com"}}); err == nil {
		t.Fatal("WebSocket from a foreign origin was accepted")
	} else if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: got %v, want 403", err)
	}
	if _, _, err := eg.DialWS([]string{"graphql-transport-ws"}, http.Header{"Origin": {"https://admin.example.com"}}); err != nil {
		t.Fatalf("allowed origin: %v", err)
	}
}

func TestComplexityCountsPageSizes(t *testing.T) {
	eg := servertest.Start(t, nil)
	var q strings.Builder
	q.WriteString("{")
	for i := 0; i < 3; i++ {
		fmt.Fprintf(&q, " a%d: webhooks(limit: 200) { items { deliveries(limit: 200) { items { id } } } }", i)
	}
	q.WriteString(" }")
	if r := eg.GraphQL(servertest.AdminToken, q.String(), nil); r.Code() != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Fatalf("nested pages of 200: got %q, want COMPLEXITY_LIMIT_EXCEEDED: %.300s", r.Code(), r.Body)
	}
	// An ordinary admin page passes.
	ok := `{ webhooks(limit: 20) { total items { id name deliveries(limit: 5) { items { id status attempts { number } } } } } }`
	if r := eg.GraphQL(servertest.AdminToken, ok, nil); len(r.Errors) > 0 {
		t.Fatalf("ordinary query refused: %s", r.Body)
	}
}
