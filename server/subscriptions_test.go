package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/graph/scalar"
	"github.com/eventgate/eventgate/server/servertest"
)

const eventsSubscription = `subscription($after: Cursor, $types: [String!]) { events(after: $after, types: $types) { id cursor type } }`

type streamedEvent struct {
	ID, Cursor, Type string
}

// follow reads events of operation id until want events arrived, resubscribing with the
// SLOW_CONSUMER cursor when the server drops the subscription — the client pattern of the README.
func follow(t *testing.T, c *servertest.WSClient, want int, after string) []streamedEvent {
	t.Helper()
	var got []streamedEvent
	op := 0
	subscribe := func(cursor string) {
		op++
		vars := map[string]any{}
		if cursor != "" {
			vars["after"] = cursor
		}
		c.Subscribe(fmt.Sprint(op), eventsSubscription, vars)
	}
	subscribe(after)
	for len(got) < want {
		m := c.Read()
		switch m.Type {
		case "next":
			var p struct {
				Data   struct{ Events streamedEvent }
				Errors []json.RawMessage
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
				t.Fatalf("bad next: %s", m.Payload)
			}
			got = append(got, p.Data.Events)
		case "error":
			var errs []struct {
				Extensions struct{ Code, Cursor string }
			}
			_ = json.Unmarshal(m.Payload, &errs)
			if len(errs) == 0 || errs[0].Extensions.Code != "SLOW_CONSUMER" {
				t.Fatalf("subscription error: %s", m.Payload)
			}
			subscribe(errs[0].Extensions.Cursor)
		case "ping":
			c.Send(servertest.WSMessage{Type: "pong"})
		default:
			t.Fatalf("unexpected %s: %s", m.Type, m.Payload)
		}
	}
	return got
}

func publishBatch(t *testing.T, eg *servertest.Instance, from, n int) {
	t.Helper()
	inputs := make([]map[string]any, n)
	for i := range inputs {
		inputs[i] = map[string]any{"type": "user.created", "payload": map[string]any{"user_id": from + i}}
	}
	eg.MustGraphQL(servertest.AdminToken, `mutation($in: [PublishEventInput!]!) { publishEvents(inputs: $in) { id } }`, map[string]any{"in": inputs}, nil)
}

// allCursors lists the cursors of every stored event after a cursor, in log order.
func allCursors(t *testing.T, eg *servertest.Instance, after string) []string {
	t.Helper()
	var out []string
	for {
		var page struct {
			Events struct {
				Edges    []struct{ Cursor string }
				PageInfo struct {
					EndCursor   string
					HasNextPage bool
				}
			}
		}
		vars := map[string]any{}
		if after != "" {
			vars["a"] = after
		}
		eg.MustGraphQL(servertest.AdminToken, `query($a: Cursor) { events(first: 200, after: $a) { edges { cursor } pageInfo { endCursor hasNextPage } } }`,
			vars, &page)
		for _, e := range page.Events.Edges {
			out = append(out, e.Cursor)
		}
		if !page.Events.PageInfo.HasNextPage {
			return out
		}
		after = page.Events.PageInfo.EndCursor
	}
}

// TestResumeWhilePublishing: 10,000 events from several goroutines while a subscriber resumes
// from a cursor in the middle; it gets exactly the events after the cursor, in log order, once.
func TestResumeWhilePublishing(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, func(c *configT) { c.PublishRate = 1e6; c.PublishBurst = 1e6 })
		const before, during, writers, batch = 2000, 8000, 8, 50
		for i := 0; i < before; i += batch {
			publishBatch(t, eg, i, batch)
		}
		cursors := allCursors(t, eg, "")
		if len(cursors) != before {
			t.Fatalf("got %d stored events, want %d", len(cursors), before)
		}
		resumeFrom := cursors[before/2-1]

		c := eg.Subscriber(servertest.AdminToken)
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < during/writers; i += batch {
					publishBatch(t, eg, before+w*during+i, batch)
				}
			}(w)
		}
		got := follow(t, c, before/2+during, resumeFrom)
		wg.Wait()
		want := allCursors(t, eg, resumeFrom)
		if len(want) != before/2+during {
			t.Fatalf("log has %d events after the cursor, want %d", len(want), before/2+during)
		}
		for i := range want {
			if got[i].Cursor != want[i] {
				t.Fatalf("event %d: got cursor %s, want %s (gap, duplicate or reorder)", i, got[i].Cursor, want[i])
			}
		}
		// Nothing more arrives: no duplicates after the last one.
		if m, err := c.TryRead(300 * time.Millisecond); err == nil && m.Type == "next" {
			t.Fatalf("extra event after all were received: %s", m.Payload)
		}
	})
}

func TestSubscriptionAuthPaths(t *testing.T) {
	eg := servertest.Start(t, nil)
	reader := eg.CreateToken("reader", []string{"EVENTS_SUBSCRIBE"}, nil)
	inits := []struct {
		name    string
		payload string
		header  http.Header
		want    string
	}{
		{"Authorization key", `{"Authorization":"Bearer ` + reader + `"}`, nil, "connection_ack"},
		{"authorization key", `{"authorization":"Bearer ` + reader + `"}`, nil, "connection_ack"},
		{"token key", `{"token":"` + reader + `"}`, nil, "connection_ack"},
		{"upgrade header", `{}`, http.Header{"Authorization": {"Bearer " + reader}}, "connection_ack"},
		{"bad token", `{"token":"egt_wrong"}`, nil, "4403"},
		{"no token", `{}`, nil, "4403"},
	}
	for _, tc := range inits {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := eg.DialWS([]string{"graphql-transport-ws"}, tc.header)
			if err != nil {
				t.Fatal(err)
			}
			c.Send(servertest.WSMessage{Type: "connection_init", Payload: json.RawMessage(tc.payload)})
			if tc.want == "connection_ack" {
				if m := c.Read(); m.Type != "connection_ack" {
					t.Fatalf("got %s, want connection_ack", m.Type)
				}
				return
			}
			if code := c.CloseCode(5 * time.Second); code != 4403 {
				t.Fatalf("got close %d, want 4403", code)
			}
		})
	}
	t.Run("token in URL is refused", func(t *testing.T) {
		c, _, err := eg.DialWSPath("/query?token="+reader, []string{"graphql-transport-ws"})
		if err != nil {
			t.Fatal(err)
		}
		c.Send(servertest.WSMessage{Type: "connection_init", Payload: json.RawMessage(`{}`)})
		if code := c.CloseCode(5 * time.Second); code != 4403 {
			t.Fatalf("got close %d, want 4403", code)
		}
	})
}

func TestRevokedTokenClosesSocket(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		var created struct {
			CreateApiToken struct {
				Secret string
				Token  struct{ ID string }
			}
		}
		eg.MustGraphQL(servertest.AdminToken, `mutation { createApiToken(input: {name: "viewer", scopes: [EVENTS_SUBSCRIBE]}) { secret token { id } } }`, nil, &created)
		c := eg.Subscriber(created.CreateApiToken.Secret)
		c.Subscribe("1", eventsSubscription, nil)
		eg.MustGraphQL(servertest.AdminToken, `mutation($id: ID!) { revokeApiToken(id: $id) { id } }`, map[string]any{"id": created.CreateApiToken.Token.ID}, nil)
		if code := c.CloseCode(5 * time.Second); code != 4403 {
			t.Fatalf("got close %d within 5 s of revocation, want 4403", code)
		}
	})
}

func TestDeliveryUpdatedStreamsChanges(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, nil)
		var created struct {
			CreateWebhook struct{ Webhook struct{ ID string } }
		}
		eg.MustGraphQL(servertest.AdminToken, createWebhook, webhookInput(map[string]any{"url": "http://127.0.0.1:9/unreachable"}), &created)
		c := eg.Subscriber(servertest.AdminToken)
		c.Subscribe("d", `subscription($w: ID) { deliveryUpdated(webhookId: $w) { id status eventType webhook { id } } }`, map[string]any{"w": created.CreateWebhook.Webhook.ID})
		// deliveryUpdated is live only: test again (every 200 ms) until the subscription runs
		// and sees one. (A WebSocket read that timed out cannot be retried, hence the goroutine.)
		seen, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			for {
				eg.GraphQL(servertest.AdminToken, `mutation($id: ID!) { testWebhook(id: $id) { id } }`, map[string]any{"id": created.CreateWebhook.Webhook.ID})
				select {
				case <-seen:
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
		}()
		m := c.Read()
		close(seen)
		<-stopped
		var p struct {
			Data struct {
				DeliveryUpdated struct {
					ID, Status, EventType string
					Webhook               struct{ ID string }
				}
			}
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || m.Type != "next" {
			t.Fatalf("got %s %s", m.Type, m.Payload)
		}
		d := p.Data.DeliveryUpdated
		if d.EventType != "webhook.test" || d.Webhook.ID != created.CreateWebhook.Webhook.ID || d.Status == "" {
			t.Fatalf("got %+v from %s", d, m.Payload)
		}
	})
}

func TestExpiredCursor(t *testing.T) {
	servertest.Each(t, func(t *testing.T, start servertest.Starter) {
		eg := start(t, func(c *configT) { c.EventRetention = time.Millisecond })
		publishBatch(t, eg, 0, 3)
		old := allCursors(t, eg, "")[0]
		time.Sleep(5 * time.Millisecond)
		if n, err := eg.App.PruneEvents(context.Background()); err != nil || n != 3 {
			t.Fatalf("prune: got %d, %v; want 3 deleted", n, err)
		}
		if r := eg.GraphQL(servertest.AdminToken, `query($a: Cursor) { events(after: $a) { edges { cursor } } }`, map[string]any{"a": old}); r.Code() != "CURSOR_EXPIRED" {
			t.Fatalf("query: got %q, want CURSOR_EXPIRED: %s", r.Code(), r.Body)
		}
		c := eg.Subscriber(servertest.AdminToken)
		c.Subscribe("1", eventsSubscription, map[string]any{"after": old})
		m := c.Read()
		if m.Type != "error" || !json.Valid(m.Payload) || !strings.Contains(string(m.Payload), "CURSOR_EXPIRED") {
			t.Fatalf("subscription: got %s %s, want an error with CURSOR_EXPIRED", m.Type, m.Payload)
		}
	})
}

// TestSharedRenderingsRespectVariables: subscriptions of one document share renderings only
// when the variables that shape an event agree; each subscriber sees what it asked for.
func TestSharedRenderingsRespectVariables(t *testing.T) {
	eg := servertest.Start(t, nil)
	const q = `subscription($after: Cursor, $withPayload: Boolean!) { events(after: $after) { id payload @include(if: $withPayload) } }`
	from := string(scalar.CursorFor(0))
	subs := map[string]*servertest.WSClient{}
	for _, name := range []string{"with-1", "with-2", "without"} {
		c := eg.Subscriber(servertest.AdminToken)
		c.Subscribe("1", q, map[string]any{"after": from, "withPayload": name != "without"})
		subs[name] = c
	}
	publishBatch(t, eg, 0, 20)
	for name, c := range subs {
		for i := 0; i < 20; i++ {
			m := c.Read()
			var p struct {
				Data struct {
					Events map[string]json.RawMessage
				}
			}
			if m.Type != "next" || json.Unmarshal(m.Payload, &p) != nil {
				t.Fatalf("%s: got %s %s", name, m.Type, m.Payload)
			}
			_, hasPayload := p.Data.Events["payload"]
			if hasPayload != (name != "without") {
				t.Fatalf("%s: event %d has payload=%v: %s", name, i, hasPayload, m.Payload)
			}
		}
	}
}

// TestSlowConsumerEndToEnd: a subscriber that stops reading is dropped with SLOW_CONSUMER and the
// cursor of the last event it was actually sent, while another subscriber keeps receiving; it
// resumes from that cursor and ends up with every event, in order, once.
func TestSlowConsumerEndToEnd(t *testing.T) {
	eg := servertest.Start(t, func(c *configT) { c.SubscriptionBuffer = 8; c.PublishRate = 1e6; c.PublishBurst = 1e6 })
	start := string(scalar.CursorFor(0))
	slow := eg.SlowSubscriber(servertest.AdminToken)
	// With the payload, so the frames fill the socket's buffers.
	slow.Subscribe("s", `subscription($after: Cursor) { events(after: $after) { id cursor type payload } }`, map[string]any{"after": start})
	fast := eg.Subscriber(servertest.AdminToken)

	const batches, size = 24, 500
	blob := strings.Repeat("x", 1024) // fills the slow socket's kernel buffers sooner
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := 0; b < batches; b++ {
			inputs := make([]map[string]any, size)
			for i := range inputs {
				inputs[i] = map[string]any{"type": "user.created", "payload": map[string]any{"user_id": b*size + i, "blob": blob}}
			}
			eg.MustGraphQL(servertest.AdminToken, `mutation($in: [PublishEventInput!]!) { publishEvents(inputs: $in) { id } }`, map[string]any{"in": inputs}, nil)
		}
	}()
	// The fast subscriber is not held back by the slow one.
	fastDone := make(chan []streamedEvent)
	go func() { fastDone <- follow(t, fast, batches*size, start) }()
	// The slow one reads again as soon as the server gave up on it (before the write deadline
	// would drop its socket): it gets what it was sent, then SLOW_CONSUMER.
	servertest.WaitFor(t, 60*time.Second, "the slow subscriber to be dropped", func() bool {
		return scrape(t, eg.URL, "eventgate_slow_consumer_drops_total") >= 1
	})
	var received []string
	var resume string
	for resume == "" {
		m := slow.Read()
		switch m.Type {
		case "next":
			var p struct {
				Data struct{ Events streamedEvent }
			}
			_ = json.Unmarshal(m.Payload, &p)
			received = append(received, p.Data.Events.Cursor)
		case "error":
			var errs []struct {
				Extensions struct{ Code, Cursor string }
			}
			_ = json.Unmarshal(m.Payload, &errs)
			if len(errs) == 0 || errs[0].Extensions.Code != "SLOW_CONSUMER" {
				t.Fatalf("got error %s, want SLOW_CONSUMER", m.Payload)
			}
			resume = errs[0].Extensions.Cursor
		case "complete":
			t.Fatal("got complete, want SLOW_CONSUMER: the subscriber never fell behind (raise the load)")
		}
	}
	<-done
	got := <-fastDone
	want := allCursors(t, eg, "")
	if strings.Join(cursorsOf(got), ",") != strings.Join(want, ",") {
		t.Fatalf("fast subscriber got %d events, want the %d of the log in order", len(got), len(want))
	}
	if len(received) == 0 && resume != start {
		t.Fatalf("no event received, resume cursor %s, want the start cursor %s", resume, start)
	}
	if len(received) > 0 && resume != received[len(received)-1] {
		t.Fatalf("resume cursor %s is not the last event sent (%s)", resume, received[len(received)-1])
	}
	rest := follow(t, slow, len(want)-len(received), resume)
	all := append(received, cursorsOf(rest)...)
	if strings.Join(all, ",") != strings.Join(want, ",") {
		t.Fatalf("slow subscriber ended with %d events, want the %d of the log in order", len(all), len(want))
	}
}

func cursorsOf(evs []streamedEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Cursor
	}
	return out
}
