package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/eventgate/eventgate/server/servertest"
)

const publishEvent = `mutation($input: PublishEventInput!) { publishEvent(input: $input) { id cursor type payload data { __typename } } }`

// validPayloads holds one valid payload per publishable catalog type.
var validPayloads = map[string]map[string]any{
	"user.created":          {"user_id": 1, "telegram_id": 7123456789012, "username": "ann"},
	"payment.completed":     {"transaction_id": 10, "user_id": 1, "amount_kopeks": 50000, "amount_rubles": 500.0},
	"transaction.created":   {"transaction_id": 11, "user_id": 1, "amount_kopeks": 100},
	"ticket.created":        {"ticket_id": 5, "user_id": 1, "title": "help", "priority": "high"},
	"ticket.status_changed": {"ticket_id": 5, "old_status": "open", "new_status": "closed", "closed_at": "2026-11-27T06:00:00Z"},
	"ticket.message_added":  {"ticket_id": 5, "message_id": 9, "is_from_admin": true},
}

func countEvents(t *testing.T, eg *servertest.Instance) int {
	t.Helper()
	var out struct {
		Events struct{ Edges []struct{ Cursor string } }
	}
	eg.MustGraphQL(servertest.AdminToken, `{ events(first: 200) { edges { cursor } } }`, nil, &out)
	return len(out.Events.Edges)
}

func TestPublishValidatesEveryType(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		for typ, payload := range validPayloads {
			t.Run(typ, func(t *testing.T) {
				var out struct {
					PublishEvent struct {
						ID, Cursor, Type string
						Data             struct {
							Typename string `json:"__typename"`
						}
					}
				}
				eg.MustGraphQL(servertest.AdminToken, publishEvent, map[string]any{"input": map[string]any{"type": typ, "payload": payload}}, &out)
				if out.PublishEvent.Type != typ || out.PublishEvent.ID == "" || out.PublishEvent.Cursor == "" || out.PublishEvent.Data.Typename == "" {
					t.Fatalf("got %+v", out.PublishEvent)
				}
			})
		}
		before := countEvents(t, eg)
		bad := []struct {
			name, typ string
			payload   any
			field     string
		}{
			{"missing required", "payment.completed", map[string]any{"transaction_id": 1, "user_id": 1}, "input.payload.amount_kopeks"},
			{"wrong type", "payment.completed", map[string]any{"transaction_id": 1, "user_id": 1, "amount_kopeks": "100"}, "input.payload.amount_kopeks"},
			{"fraction for int", "user.created", map[string]any{"user_id": 1.5}, "input.payload.user_id"},
			{"bad enum", "ticket.created", map[string]any{"ticket_id": 1, "user_id": 1, "title": "x", "priority": "asap"}, "input.payload.priority"},
			{"bad time", "ticket.status_changed", map[string]any{"ticket_id": 1, "old_status": "a", "new_status": "b", "closed_at": "yesterday"}, "input.payload.closed_at"},
			{"missing bool", "ticket.message_added", map[string]any{"ticket_id": 1, "message_id": 2}, "input.payload.is_from_admin"},
			{"missing title", "ticket.created", map[string]any{"ticket_id": 1, "user_id": 1}, "input.payload.title"},
			{"transaction user", "transaction.created", map[string]any{"transaction_id": 1, "amount_kopeks": 1}, "input.payload.user_id"},
			{"not an object", "user.created", []any{1, 2}, "input.payload"},
			{"unknown type", "user.deleted", map[string]any{"user_id": 1}, "input.type"},
			{"reserved type", "webhook.test", map[string]any{}, "input.type"},
			{"bad id", "user.created", map[string]any{"user_id": 1}, "input.id"},
		}
		for _, tt := range bad {
			t.Run(tt.name, func(t *testing.T) {
				in := map[string]any{"type": tt.typ, "payload": tt.payload}
				if tt.name == "bad id" {
					in["id"] = "has space"
				}
				r := eg.GraphQL(servertest.AdminToken, publishEvent, map[string]any{"input": in})
				if r.Code() != "BAD_USER_INPUT" || r.Field() != tt.field {
					t.Fatalf("got code %q field %q, want BAD_USER_INPUT %q: %s", r.Code(), r.Field(), tt.field, r.Body)
				}
			})
		}
		if after := countEvents(t, eg); after != before {
			t.Fatalf("refused events were stored: %d events before, %d after", before, after)
		}
	})
}

func TestPublishIsIdempotentUnderConcurrency(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		eg.MustGraphQL(servertest.AdminToken, createWebhook, webhookInput(map[string]any{"url": "http://127.0.0.1:9/hook"}), nil)
		input := map[string]any{"input": map[string]any{"type": "payment.completed", "id": "pay:42",
			"payload": map[string]any{"transaction_id": 42, "user_id": 1, "amount_kopeks": 100}}}
		var wg sync.WaitGroup
		ids := make([]string, 20)
		for i := range ids {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				r := eg.GraphQL(servertest.AdminToken, publishEvent, input)
				var out struct{ PublishEvent struct{ ID, Cursor string } }
				if len(r.Errors) == 0 {
					_ = json.Unmarshal(r.Data, &out)
				}
				ids[i] = out.PublishEvent.ID + "@" + out.PublishEvent.Cursor
			}(i)
		}
		wg.Wait()
		for _, id := range ids {
			if id != ids[0] || !strings.HasPrefix(id, "pay:42@") {
				t.Fatalf("got %v, want one stored event returned to every caller", ids)
			}
		}
		if n := countEvents(t, eg); n != 1 {
			t.Fatalf("got %d events, want 1", n)
		}
		var d struct{ Deliveries struct{ Total int } }
		eg.MustGraphQL(servertest.AdminToken, `{ deliveries { total } }`, nil, &d)
		if d.Deliveries.Total != 1 {
			t.Fatalf("got %d deliveries, want 1", d.Deliveries.Total)
		}
		// The same id with another payload is refused.
		input["input"].(map[string]any)["payload"] = map[string]any{"transaction_id": 42, "user_id": 1, "amount_kopeks": 999}
		if r := eg.GraphQL(servertest.AdminToken, publishEvent, input); r.Code() != "BAD_USER_INPUT" || r.Field() != "input.id" {
			t.Fatalf("got %q %q, want BAD_USER_INPUT on input.id: %s", r.Code(), r.Field(), r.Body)
		}
	})
}

func TestPublishEventsIsAllOrNothing(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		r := eg.GraphQL(servertest.AdminToken, `mutation($in: [PublishEventInput!]!) { publishEvents(inputs: $in) { id } }`, map[string]any{"in": []any{
			map[string]any{"type": "user.created", "payload": map[string]any{"user_id": 1}},
			map[string]any{"type": "user.created", "payload": map[string]any{"user_id": "x"}},
		}})
		if r.Code() != "BAD_USER_INPUT" || r.Field() != "inputs[1].payload.user_id" {
			t.Fatalf("got %q %q: %s", r.Code(), r.Field(), r.Body)
		}
		if n := countEvents(t, eg); n != 0 {
			t.Fatalf("got %d events after a refused batch, want 0", n)
		}
	})
}

func restPost(t *testing.T, eg *servertest.Instance, token, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, eg.URL+"/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

func TestRESTIngest(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		publisher := eg.CreateToken("bot", []string{"EVENTS_PUBLISH"}, nil)
		reader := eg.CreateToken("reader", []string{"WEBHOOKS_READ"}, nil)
		one := `{"type":"user.created","id":"u-1","payload":{"user_id":1,"extra_key":"kept"}}`
		tests := []struct {
			name, token, body string
			status            int
			contains          string
		}{
			{"created", publisher, one, 201, `"extra_key":"kept"`},
			{"repeat", publisher, one, 200, `"id":"u-1"`},
			{"batch", publisher, `[{"type":"user.created","payload":{"user_id":2}},{"type":"ticket.created","payload":{"ticket_id":1,"user_id":2,"title":"t"}}]`, 201, `"type":"ticket.created"`},
			{"invalid", publisher, `{"type":"user.created","payload":{"user_id":"x"}}`, 400, `"field":"payload.user_id"`},
			{"batch invalid", publisher, `[{"type":"user.created","payload":{"user_id":2}},{"type":"user.created","payload":{}}]`, 400, `"field":"[1].payload.user_id"`},
			{"bad json", publisher, `{"type":`, 400, `"code":"BAD_USER_INPUT"`},
			{"no token", "", one, 401, `"code":"UNAUTHENTICATED"`},
			{"wrong scope", reader, one, 403, `"code":"FORBIDDEN"`},
			{"too large", publisher, `{"type":"user.created","payload":{"user_id":1,"blob":"` + strings.Repeat("x", 300<<10) + `"}}`, 413, `"field":"payload"`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := restPost(t, eg, tt.token, tt.body)
				if resp.StatusCode != tt.status || !bytes.Contains(body, []byte(tt.contains)) {
					t.Fatalf("got %d %.300s, want %d containing %s", resp.StatusCode, body, tt.status, tt.contains)
				}
			})
		}
		if n := countEvents(t, eg); n != 3 {
			t.Fatalf("got %d events, want 3", n)
		}
	})
}

func TestRESTRateLimit(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, func(c *configT) { c.PublishRate = 1; c.PublishBurst = 2 })
		tok := eg.CreateToken("bot", []string{"EVENTS_PUBLISH"}, nil)
		var last *http.Response
		for i := 0; i < 3; i++ {
			last, _ = restPost(t, eg, tok, fmt.Sprintf(`{"type":"user.created","payload":{"user_id":%d}}`, i))
		}
		if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
			t.Fatalf("third publish over a burst of 2: got %d Retry-After %q, want 429 with Retry-After", last.StatusCode, last.Header.Get("Retry-After"))
		}
		r := eg.GraphQL(tok, publishEvent, map[string]any{"input": map[string]any{"type": "user.created", "payload": map[string]any{"user_id": 9}}})
		if r.Code() != "RATE_LIMITED" {
			t.Fatalf("GraphQL publish over the rate: got %q, want RATE_LIMITED", r.Code())
		}
	})
}

func TestEventVisibilityByTokenTypes(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		for typ, payload := range validPayloads {
			eg.MustGraphQL(servertest.AdminToken, publishEvent, map[string]any{"input": map[string]any{"type": typ, "payload": payload, "id": "e-" + strings.ReplaceAll(typ, ".", "-")}}, nil)
		}
		limited := eg.CreateToken("tickets", []string{"EVENTS_SUBSCRIBE"}, []string{"ticket.created"})
		var out struct {
			Events struct {
				Edges []struct{ Node struct{ Type string } }
			}
		}
		eg.MustGraphQL(limited, `{ events { edges { node { type } } } }`, nil, &out)
		if len(out.Events.Edges) != 1 || out.Events.Edges[0].Node.Type != "ticket.created" {
			t.Fatalf("limited token sees %+v, want only ticket.created", out.Events.Edges)
		}
		var one struct{ Event *struct{ ID string } }
		eg.MustGraphQL(limited, `{ event(id: "e-user-created") { id } }`, nil, &one)
		if one.Event != nil {
			t.Fatal("limited token can read a user.created event by id")
		}
	})
}

func TestEventsPaging(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		for i := 0; i < 5; i++ {
			eg.MustGraphQL(servertest.AdminToken, publishEvent, map[string]any{"input": map[string]any{"type": "user.created", "payload": map[string]any{"user_id": i}}}, nil)
		}
		type page struct {
			Events struct {
				Edges []struct {
					Node struct {
						Payload struct {
							UserID int `json:"user_id"`
						}
					}
				}
				PageInfo struct {
					EndCursor   string
					HasNextPage bool
				}
			}
		}
		var p1, p2 page
		eg.MustGraphQL(servertest.AdminToken, `{ events(first: 3) { edges { node { payload } } pageInfo { endCursor hasNextPage } } }`, nil, &p1)
		eg.MustGraphQL(servertest.AdminToken, `query($c: Cursor) { events(first: 3, after: $c) { edges { node { payload } } pageInfo { endCursor hasNextPage } } }`,
			map[string]any{"c": p1.Events.PageInfo.EndCursor}, &p2)
		if len(p1.Events.Edges) != 3 || !p1.Events.PageInfo.HasNextPage || len(p2.Events.Edges) != 2 || p2.Events.PageInfo.HasNextPage ||
			p2.Events.Edges[0].Node.Payload.UserID != 3 {
			t.Fatalf("got pages %+v and %+v", p1.Events, p2.Events)
		}
		for _, q := range []string{`{ events(first: 0) { edges { cursor } } }`, `{ events(first: 201) { edges { cursor } } }`, `{ events(after: "garbage") { edges { cursor } } }`} {
			if r := eg.GraphQL(servertest.AdminToken, q, nil); r.Code() != "BAD_USER_INPUT" {
				t.Errorf("%s: got %q, want BAD_USER_INPUT: %s", q, r.Code(), r.Body)
			}
		}
	})
}
