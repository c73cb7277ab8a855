package server_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/server/servertest"
)

const createWebhook = `mutation($input: CreateWebhookInput!) {
  createWebhook(input: $input) { secret webhook { id name url eventTypes isActive hasSecret payloadFormat timeoutSeconds customHeaders rateLimitPerSecond } }
}`

func webhookInput(overrides map[string]any) map[string]any {
	in := map[string]any{"name": "billing", "url": "https://receiver.example.com/hook", "eventTypes": []string{"payment.completed"}}
	for k, v := range overrides {
		if v == nil {
			delete(in, k)
			continue
		}
		in[k] = v
	}
	return map[string]any{"input": in}
}

func TestWebhookRoundTrip(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		var created struct {
			CreateWebhook struct {
				Secret  string
				Webhook struct {
					ID, Name, URL, PayloadFormat string
					EventTypes                   []string
					IsActive, HasSecret          bool
					TimeoutSeconds               int
				}
			}
		}
		eg.MustGraphQL(servertest.AdminToken, createWebhook, webhookInput(map[string]any{
			"customHeaders": map[string]any{"X-Tenant": "acme-secret-value"},
		}), &created)
		w := created.CreateWebhook.Webhook
		if !strings.HasPrefix(created.CreateWebhook.Secret, "whsec_") || !w.HasSecret || !w.IsActive ||
			w.PayloadFormat != "STANDARD" || w.TimeoutSeconds != 15 {
			t.Fatalf("got %+v", created.CreateWebhook)
		}

		var list struct {
			Webhooks struct {
				Total int
				Items []struct{ ID string }
			}
		}
		eg.MustGraphQL(servertest.AdminToken, `{ webhooks(eventType: "payment.completed") { total items { id } } }`, nil, &list)
		if list.Webhooks.Total != 1 || list.Webhooks.Items[0].ID != w.ID {
			t.Fatalf("got %+v, want the created webhook", list.Webhooks)
		}
		eg.MustGraphQL(servertest.AdminToken, `{ webhooks(eventType: "user.created") { total items { id } } }`, nil, &list)
		if list.Webhooks.Total != 0 {
			t.Fatalf("filter by another type: got %d webhooks, want 0", list.Webhooks.Total)
		}

		var updated struct {
			UpdateWebhook struct {
				Name        string
				Description *string
				IsActive    bool
			}
		}
		eg.MustGraphQL(servertest.AdminToken, `mutation($id: ID!) { updateWebhook(id: $id, input: {name: "billing-2", description: "x", isActive: false}) { name description isActive } }`,
			map[string]any{"id": w.ID}, &updated)
		if updated.UpdateWebhook.Name != "billing-2" || updated.UpdateWebhook.IsActive || updated.UpdateWebhook.Description == nil {
			t.Fatalf("got %+v", updated.UpdateWebhook)
		}
		eg.MustGraphQL(servertest.AdminToken, `mutation($id: ID!, $in: UpdateWebhookInput!) { updateWebhook(id: $id, input: $in) { name description isActive } }`,
			map[string]any{"id": w.ID, "in": map[string]any{"description": nil}}, &updated)
		if updated.UpdateWebhook.Description != nil || updated.UpdateWebhook.Name != "billing-2" {
			t.Fatalf("explicit null should clear only description: got %+v", updated.UpdateWebhook)
		}

		var rotated struct {
			RotateWebhookSecret struct{ Secret string }
		}
		eg.MustGraphQL(servertest.AdminToken, `mutation($id: ID!) { rotateWebhookSecret(id: $id, gracePeriodSeconds: 60) { secret } }`,
			map[string]any{"id": w.ID}, &rotated)
		if rotated.RotateWebhookSecret.Secret == created.CreateWebhook.Secret || !strings.HasPrefix(rotated.RotateWebhookSecret.Secret, "whsec_") {
			t.Fatalf("rotation returned %q", rotated.RotateWebhookSecret.Secret)
		}

		// Secrets and header values appear nowhere but in the two payloads.
		r := eg.GraphQL(servertest.AdminToken, `query($id: ID!) { webhook(id: $id) { id name url eventTypes isActive description hasSecret payloadFormat timeoutSeconds customHeaders rateLimitPerSecond createdAt updatedAt lastTriggeredAt successCount failureCount disabledReason } }`,
			map[string]any{"id": w.ID})
		for _, secret := range []string{created.CreateWebhook.Secret, rotated.RotateWebhookSecret.Secret, "acme-secret-value"} {
			if bytes.Contains(r.Body, []byte(secret)) {
				t.Fatalf("webhook query reveals a secret: %s", r.Body)
			}
		}
		if !bytes.Contains(r.Body, []byte(`"X-Tenant"`)) {
			t.Fatalf("custom header names should stay readable: %s", r.Body)
		}
		assertNotInDataDir(t, eg.DataDir, created.CreateWebhook.Secret, rotated.RotateWebhookSecret.Secret, "acme-secret-value")

		var deleted struct{ DeleteWebhook bool }
		eg.MustGraphQL(servertest.AdminToken, `mutation($id: ID!) { deleteWebhook(id: $id) }`, map[string]any{"id": w.ID}, &deleted)
		if !deleted.DeleteWebhook {
			t.Fatal("deleteWebhook returned false")
		}
		var gone struct{ Webhook *struct{ ID string } }
		eg.MustGraphQL(servertest.AdminToken, `query($id: ID!) { webhook(id: $id) { id } }`, map[string]any{"id": w.ID}, &gone)
		if gone.Webhook != nil {
			t.Fatalf("webhook still there after delete")
		}
	})
}

// assertNotInDataDir checks that no file of the data folder (database, WAL) holds a secret in plaintext.
func assertNotInDataDir(t *testing.T, dir string, secrets ...string) {
	t.Helper()
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s contains a secret in plaintext", filepath.Base(path))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWebhookValidation(t *testing.T) {
	eg := servertest.Start(t, func(c *configT) { c.AllowedTargets = nil })
	long := strings.Repeat("a", 256)
	tests := []struct {
		name      string
		overrides map[string]any
		field     string
	}{
		{"empty name", map[string]any{"name": ""}, "input.name"},
		{"long name", map[string]any{"name": long}, "input.name"},
		{"relative url", map[string]any{"url": "/hook"}, "input.url"},
		{"ftp url", map[string]any{"url": "ftp://example.com/x"}, "input.url"},
		{"long url", map[string]any{"url": "https://example.com/" + strings.Repeat("a", 2048)}, "input.url"},
		{"loopback", map[string]any{"url": "http://127.0.0.1/hook"}, "input.url"},
		{"localhost", map[string]any{"url": "http://localhost:8080/hook"}, "input.url"},
		{"metadata", map[string]any{"url": "http://169.254.169.254/latest"}, "input.url"},
		{"private", map[string]any{"url": "http://10.0.0.1/hook"}, "input.url"},
		{"numeric host", map[string]any{"url": "http://2130706433/"}, "input.url"},
		{"no event types", map[string]any{"eventTypes": []string{}}, "input.eventTypes"},
		{"unknown event type", map[string]any{"eventTypes": []string{"nope.nope"}}, "input.eventTypes[0]"},
		{"duplicate event type", map[string]any{"eventTypes": []string{"user.created", "user.created"}}, "input.eventTypes[1]"},
		{"timeout 0", map[string]any{"timeoutSeconds": 0}, "input.timeoutSeconds"},
		{"timeout 31", map[string]any{"timeoutSeconds": 31}, "input.timeoutSeconds"},
		{"empty secret", map[string]any{"secret": ""}, "input.secret"},
		{"short secret", map[string]any{"secret": "short"}, "input.secret"},
		{"whsec too short", map[string]any{"secret": "whsec_c2hvcnQ="}, "input.secret"},
		{"reserved header", map[string]any{"customHeaders": map[string]any{"webhook-signature": "x"}}, "input.customHeaders.webhook-signature"},
		{"legacy header", map[string]any{"customHeaders": map[string]any{"X-Webhook-Event": "x"}}, "input.customHeaders.X-Webhook-Event"},
		{"bad header name", map[string]any{"customHeaders": map[string]any{"bad name": "x"}}, "input.customHeaders.bad name"},
		{"header value with a line break", map[string]any{"customHeaders": map[string]any{"X-Tenant": "a\r\nX-Injected: 1"}}, "input.customHeaders.X-Tenant"},
		{"header value with a control character", map[string]any{"customHeaders": map[string]any{"X-Tenant": "a\x01b"}}, "input.customHeaders.X-Tenant"},
		{"rate limit 0", map[string]any{"rateLimitPerSecond": 0}, "input.rateLimitPerSecond"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := eg.GraphQL(servertest.AdminToken, createWebhook, webhookInput(tt.overrides))
			if r.Status != http.StatusOK || r.Code() != "BAD_USER_INPUT" || r.Field() != tt.field {
				t.Fatalf("got status %d code %q field %q, want 200 BAD_USER_INPUT %q: %s", r.Status, r.Code(), r.Field(), tt.field, r.Body)
			}
		})
	}
	// Valid secrets of both forms are accepted.
	for _, secret := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "legacy-secret-of-the-old-bot"} {
		r := eg.GraphQL(servertest.AdminToken, createWebhook, webhookInput(map[string]any{"secret": secret, "url": "https://example.invalid/hook"}))
		if len(r.Errors) > 0 {
			t.Fatalf("secret %q refused: %s", secret, r.Body)
		}
	}
	var count struct{ Webhooks struct{ Total int } }
	eg.MustGraphQL(servertest.AdminToken, `{ webhooks { total } }`, nil, &count)
	if count.Webhooks.Total != 2 {
		t.Fatalf("got %d webhooks, want only the 2 valid ones", count.Webhooks.Total)
	}
}

func TestPaginationBounds(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		for _, q := range []struct{ query, field string }{
			{`{ webhooks(limit: 0) { total } }`, "limit"},
			{`{ webhooks(limit: 201) { total } }`, "limit"},
			{`{ webhooks(offset: -1) { total } }`, "offset"},
			{`{ deliveries(limit: 0) { total } }`, "limit"},
			{`{ deliveries(limit: 500) { total } }`, "limit"},
		} {
			r := eg.GraphQL(servertest.AdminToken, q.query, nil)
			if r.Code() != "BAD_USER_INPUT" || r.Field() != q.field {
				t.Errorf("%s: got code %q field %q, want BAD_USER_INPUT %q", q.query, r.Code(), r.Field(), q.field)
			}
		}
		for i := 0; i < 3; i++ {
			eg.MustGraphQL(servertest.AdminToken, createWebhook, webhookInput(map[string]any{"name": string(rune('a' + i))}), nil)
		}
		var page struct {
			Webhooks struct {
				Total, Limit, Offset int
				Items                []struct{ Name string }
			}
		}
		eg.MustGraphQL(servertest.AdminToken, `{ webhooks(limit: 2, offset: 1) { total limit offset items { name } } }`, nil, &page)
		if page.Webhooks.Total != 3 || page.Webhooks.Limit != 2 || page.Webhooks.Offset != 1 || len(page.Webhooks.Items) != 2 ||
			page.Webhooks.Items[0].Name != "b" || page.Webhooks.Items[1].Name != "a" {
			t.Fatalf("got %+v, want newest first: c,b,a → offset 1 limit 2 = b,a", page.Webhooks)
		}
	})
}
