package wsgraphql_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/graph/scalar"
	"github.com/eventgate/eventgate/server/substream/substreamtest"
	"github.com/eventgate/eventgate/server/wsgraphql"
)

const (
	tws    = wsgraphql.ProtocolTransportWS
	legacy = wsgraphql.ProtocolLegacyWS

	eventsQuery = `subscription { events { cursor } }`
	viewerQuery = `{ viewer { name } }`
)

func TestCloseCodes(t *testing.T) {
	subscribe := `{"id":"1","type":"subscribe","payload":{"query":"subscription { events { id } }"}}`
	tests := []struct {
		name      string
		protocols []string
		cfg       wsgraphql.Config
		init      bool // complete connection_init first
		send      []string
		want      int
	}{
		{name: "no connection_init within the init timeout", protocols: []string{tws},
			cfg: wsgraphql.Config{InitTimeout: 50 * time.Millisecond}, want: wsgraphql.CloseInitTimeout},
		{name: "connection_init with a bad token", protocols: []string{tws},
			send: []string{`{"type":"connection_init","payload":{"Authorization":"Bearer nope"}}`}, want: wsgraphql.CloseForbidden},
		{name: "connection_init without a token", protocols: []string{tws},
			send: []string{`{"type":"connection_init"}`}, want: wsgraphql.CloseForbidden},
		{name: "second connection_init", protocols: []string{tws}, init: true,
			send: []string{`{"type":"connection_init","payload":{"token":"alice-token"}}`}, want: wsgraphql.CloseTooManyInitialise},
		{name: "subscribe before connection_ack", protocols: []string{tws},
			send: []string{subscribe}, want: wsgraphql.CloseUnauthorized},
		{name: "subscribe with an active id", protocols: []string{tws}, init: true,
			send: []string{subscribe, subscribe}, want: wsgraphql.CloseSubscriberExists},
		{name: "invalid JSON", protocols: []string{tws}, init: true,
			send: []string{`{"type":`}, want: wsgraphql.CloseBadRequest},
		{name: "invalid JSON before connection_init", protocols: []string{tws},
			send: []string{`nope`}, want: wsgraphql.CloseBadRequest},
		{name: "unknown message type", protocols: []string{tws}, init: true,
			send: []string{`{"type":"hello"}`}, want: wsgraphql.CloseBadRequest},
		{name: "message type the server sends", protocols: []string{tws}, init: true,
			send: []string{`{"id":"1","type":"next","payload":{}}`}, want: wsgraphql.CloseBadRequest},
		{name: "subscribe without id", protocols: []string{tws}, init: true,
			send: []string{`{"type":"subscribe","payload":{"query":"{ viewer { name } }"}}`}, want: wsgraphql.CloseBadRequest},
		{name: "subscribe with a numeric id", protocols: []string{tws}, init: true,
			send: []string{`{"id":1,"type":"subscribe","payload":{"query":"{ viewer { name } }"}}`}, want: wsgraphql.CloseBadRequest},
		{name: "subscribe without query", protocols: []string{tws}, init: true,
			send: []string{`{"id":"1","type":"subscribe","payload":{}}`}, want: wsgraphql.CloseBadRequest},
		{name: "connection_init with a non-object payload", protocols: []string{tws},
			send: []string{`{"type":"connection_init","payload":"Bearer alice-token"}`}, want: wsgraphql.CloseBadRequest},
		{name: "frame over the read limit", protocols: []string{tws}, init: true,
			cfg:  wsgraphql.Config{ReadLimit: 1024},
			send: []string{`{"type":"ping","payload":{"pad":"` + strings.Repeat("x", 64<<10) + `"}}`}, want: websocket.CloseMessageTooBig},
		{name: "authentication hook panics", protocols: []string{tws},
			cfg: wsgraphql.Config{Authenticate: func(context.Context, http.Header, map[string]any) (context.Context, error) {
				panic("boom")
			}},
			send: []string{`{"type":"connection_init"}`}, want: websocket.CloseInternalServerErr},
		{name: "no sub-protocol", want: wsgraphql.CloseProtocolRejected},
		{name: "unknown sub-protocol", protocols: []string{"graphql-sse"}, want: wsgraphql.CloseProtocolRejected},
		{name: "legacy: start before connection_init", protocols: []string{legacy},
			send: []string{`{"id":"1","type":"start","payload":{"query":"{ viewer { name } }"}}`}, want: wsgraphql.CloseUnauthorized},
		{name: "legacy: invalid JSON", protocols: []string{legacy}, init: true,
			send: []string{`{`}, want: wsgraphql.CloseBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.cfg, false)
			var c *client
			if tc.init {
				c = f.dialInit(t, tc.protocols[0])
			} else {
				c = f.dial(t, dialOptions{protocols: tc.protocols})
			}
			for _, s := range tc.send {
				c.sendRaw(s)
			}
			c.expectClose(tc.want)
		})
	}
}

func TestLegacyRejectedInitGetsConnectionErrorThen4403(t *testing.T) {
	f := newFixture(t, wsgraphql.Config{}, false)
	c := f.dial(t, dialOptions{protocols: []string{legacy}})
	c.send(message{Type: "connection_init", Payload: raw(`{"authorization":"Bearer revoked"}`)})
	m := c.expect("connection_error")
	if !strings.Contains(string(m.Payload), `"message"`) {
		t.Errorf("connection_error payload: got %s, want a message", m.Payload)
	}
	c.expectClose(wsgraphql.CloseForbidden)
}

func TestSubscriptionStreamsAndClientCompleteCancelsIt(t *testing.T) {
	f := newFixture(t, wsgraphql.Config{}, false)
	ctx := testContext(t)
	c := f.dialInit(t, tws)
	c.subscribe("subscribe", "1", eventsQuery)
	if err := f.src.WaitSubscribers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ev := f.src.Event(0)
		if err := f.src.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		m := c.expect("next")
		if m.ID != "1" {
			t.Errorf("next id: got %q, want 1", m.ID)
		}
		if got, want := eventCursor(t, m), string(scalar.CursorFor(int64(ev.ID))); got != want {
			t.Errorf("cursor: got %s, want %s", got, want)
		}
	}

	c.send(message{ID: "1", Type: "complete"})
	// The resolver's context ends: the source sees the subscription go.
	if err := f.src.WaitSubscribers(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := f.src.Canceled(); got != 1 {
		t.Errorf("cancelled subscriptions: got %d, want 1", got)
	}
	// The id is free again, and nothing more came for the completed operation.
	c.subscribe("subscribe", "1", viewerQuery)
	if m := c.expect("next"); m.ID != "1" || string(m.Payload) != `{"data":{"viewer":{"name":"alice"}}}` {
		t.Errorf("query on reused id: got %s %s", m.ID, m.Payload)
	}
	if m := c.expect("complete"); m.ID != "1" {
		t.Errorf("complete id: got %q, want 1", m.ID)
	}
}

func TestQueriesAndMutationsOverTheSocket(t *testing.T) {
	for _, proto := range []struct{ name, start, next string }{
		{tws, "subscribe", "next"},
		{legacy, "start", "data"},
	} {
		t.Run(proto.name, func(t *testing.T) {
			f := newFixture(t, wsgraphql.Config{}, false)
			c := f.dialInit(t, proto.name)

			c.subscribe(proto.start, "q", viewerQuery)
			if m := c.expect(proto.next); m.ID != "q" || string(m.Payload) != `{"data":{"viewer":{"name":"alice"}}}` {
				t.Errorf("query result: got %s %s, want alice's viewer", m.ID, m.Payload)
			}
			c.expect("complete")

			c.subscribe(proto.start, "m", `mutation { publishEvent(input: {type: "test.event", payload: {a: 1}}) { type payload } }`)
			m := c.expect(proto.next)
			if want := `{"data":{"publishEvent":{"type":"test.event","payload":{"a":1}}}}`; string(m.Payload) != want {
				t.Errorf("mutation result: got %s, want %s", m.Payload, want)
			}
			c.expect("complete")
		})
	}
}

func TestOperationErrorsAreTerminal(t *testing.T) {
	expired := scalar.CursorFor(3)
	tests := []struct {
		name, query, code string
	}{
		{"parse error", `subscription { events {`, "GRAPHQL_PARSE_FAILED"},
		{"validation error", `subscription { events { nope } }`, "GRAPHQL_VALIDATION_FAILED"},
		{"resolver refuses: forbidden", fmt.Sprintf(`subscription { events(types: [%q]) { id } }`, substreamtest.TypeForbidden), "FORBIDDEN"},
		{"resolver refuses: cursor expired", fmt.Sprintf(`subscription { events(after: %q) { id } }`, expired), "CURSOR_EXPIRED"},
	}
	for _, proto := range []string{tws, legacy} {
		for _, tc := range tests {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				f := newFixture(t, wsgraphql.Config{}, false)
				f.src.ExpiredCursor = expired
				c := f.dialInit(t, proto)
				start := "subscribe"
				if proto == legacy {
					start = "start"
				}
				c.subscribe(start, "1", tc.query)
				m := c.expect("error")
				if codes := errorCodes(t, m); m.ID != "1" || len(codes) == 0 || codes[0] != tc.code {
					t.Fatalf("error: got id %q codes %v, want id 1 code %s", m.ID, codes, tc.code)
				}
				// No complete follows the error: the next thing for this client is the
				// result of a later operation.
				c.subscribe(start, "2", viewerQuery)
				for {
					m := c.read()
					if m.ID == "1" {
						t.Fatalf("got %s for the failed operation after its error", m.Type)
					}
					if m.ID == "2" && m.Type == "complete" {
						break
					}
				}
			})
		}
	}
}

func TestLegacyStartDataStopAndKeepAlive(t *testing.T) {
	// Long enough for the client to be busy elsewhere for a moment without being taken for
	// dead (it answers WebSocket pings only while reading).
	f := newFixture(t, wsgraphql.Config{KeepAliveInterval: 100 * time.Millisecond}, false)
	ctx := testContext(t)
	c := f.dialInit(t, legacy)
	c.subscribe("start", "7", eventsQuery)
	if err := f.src.WaitSubscribers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	ev := f.src.Event(0)
	if err := f.src.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	readSkippingKA := func() message {
		t.Helper()
		for {
			if m := c.read(); m.Type != "ka" {
				return m
			}
		}
	}
	m := readSkippingKA()
	if m.Type != "data" || m.ID != "7" || eventCursor(t, m) != string(scalar.CursorFor(int64(ev.ID))) {
		t.Fatalf("got %s %s %s, want data for 7 with the event's cursor", m.Type, m.ID, m.Payload)
	}
	c.send(message{ID: "7", Type: "stop"})
	if m := readSkippingKA(); m.Type != "complete" || m.ID != "7" {
		t.Fatalf("after stop: got %s %s, want complete 7", m.Type, m.ID)
	}
	if err := f.src.WaitSubscribers(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// Keep-alives keep coming while the client answers the WebSocket pings that go with them.
	for range 3 {
		c.expect("ka")
	}
	c.send(message{Type: "connection_terminate"})
	if code := c.closeCode(); code != websocket.CloseNormalClosure {
		t.Errorf("close after connection_terminate: got %d, want 1000", code)
	}
}

func TestPingIsAnsweredWithPong(t *testing.T) {
	f := newFixture(t, wsgraphql.Config{}, false)
	c := f.dialInit(t, tws)
	c.send(message{Type: "ping"})
	if m := c.expect("pong"); len(m.Payload) != 0 {
		t.Errorf("pong payload: got %s, want none", m.Payload)
	}
	c.send(message{Type: "ping", Payload: raw(`{"t":1}`)})
	if m := c.expect("pong"); string(m.Payload) != `{"t":1}` {
		t.Errorf("pong payload: got %s, want the ping's", m.Payload)
	}
}

func TestServerPingsAndKeepsPeersThatAnswer(t *testing.T) {
	f := newFixture(t, wsgraphql.Config{PingInterval: 50 * time.Millisecond}, false)
	c := f.dialInit(t, tws)
	for range 5 {
		c.expect("ping")
		c.send(message{Type: "pong"})
	}
	c.subscribe("subscribe", "1", viewerQuery)
	for {
		m := c.read()
		if m.Type == "ping" {
			c.send(message{Type: "pong"})
			continue
		}
		if m.Type != "next" {
			t.Fatalf("got %s, want next", m.Type)
		}
		break
	}
}

func TestServerDropsPeerThatMissesTwoPings(t *testing.T) {
	f := newFixture(t, wsgraphql.Config{PingInterval: 20 * time.Millisecond}, false)
	// The client reads everything but sends nothing after connection_init.
	c := f.dial(t, dialOptions{protocols: []string{tws}})
	c.send(message{Type: "connection_init", Payload: raw(`{"token":"alice-token"}`)})
	pings := 0
	for {
		m, err := c.next()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseAbnormalClosure {
				t.Fatalf("read: got %v, want the connection dropped", err)
			}
			break
		}
		switch m.Type {
		case "connection_ack":
		case "ping":
			pings++
		default:
			t.Fatalf("got %s, want ping", m.Type)
		}
		// Two pings after the last message from the client, plus one if a ping went out
		// before connection_init arrived.
		if pings > 3 {
			t.Fatalf("got %d pings without an answer and the peer still connected, want it dropped after two", pings)
		}
	}
	if pings < 2 {
		t.Errorf("pings before the drop: got %d, want at least 2", pings)
	}
	waitFor(t, "the connection to be forgotten", func() bool { return f.tr.Stats().Connections == 0 })
}

func TestAuthentication(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		header  http.Header
		want    string
	}{
		{name: "payload Authorization", payload: `{"Authorization":"Bearer alice-token"}`, want: "alice"},
		{name: "payload authorization", payload: `{"authorization":"Bearer bob-token"}`, want: "bob"},
		{name: "payload token", payload: `{"token":"bob-token"}`, want: "bob"},
		{name: "upgrade Authorization header", header: http.Header{"Authorization": {"Bearer alice-token"}}, want: "alice"},
		{name: "payload wins over header", payload: `{"token":"bob-token"}`,
			header: http.Header{"Authorization": {"Bearer alice-token"}}, want: "bob"},
	}
	for _, proto := range []string{tws, legacy} {
		for _, tc := range tests {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				f := newFixture(t, wsgraphql.Config{}, false)
				c := f.dial(t, dialOptions{protocols: []string{proto}, header: tc.header})
				init := message{Type: "connection_init"}
				if tc.payload != "" {
					init.Payload = raw(tc.payload)
				}
				c.send(init)
				c.expect("connection_ack")
				start, next := "subscribe", "next"
				if proto == legacy {
					c.expect("ka")
					start, next = "start", "data"
				}
				// The operation runs in the context Authenticate returned.
				c.subscribe(start, "1", viewerQuery)
				want := fmt.Sprintf(`{"data":{"viewer":{"name":%q}}}`, tc.want)
				if m := c.expect(next); string(m.Payload) != want {
					t.Errorf("viewer: got %s, want %s", m.Payload, want)
				}
			})
		}
	}
}

func TestRecheckFailureCloses4403(t *testing.T) {
	for _, proto := range []string{tws, legacy} {
		t.Run(proto, func(t *testing.T) {
			var revoked atomic.Bool
			var checkedAs atomic.Value
			f := newFixture(t, wsgraphql.Config{
				RecheckInterval: 10 * time.Millisecond,
				Recheck: func(ctx context.Context) error {
					// The hook gets the context Authenticate returned.
					checkedAs.Store(substreamtest.Principal(ctx))
					if revoked.Load() {
						return errors.New("token revoked")
					}
					return nil
				},
			}, false)
			ctx := testContext(t)
			c := f.dialInit(t, proto)
			start := "subscribe"
			if proto == legacy {
				start = "start"
			}
			c.subscribe(start, "1", eventsQuery)
			if err := f.src.WaitSubscribers(ctx, 1); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a recheck", func() bool { return checkedAs.Load() != nil })
			if got := checkedAs.Load(); got != "alice" {
				t.Errorf("recheck context principal: got %v, want alice", got)
			}
			revoked.Store(true)
			c.expectClose(wsgraphql.CloseForbidden)
			if err := f.src.WaitSubscribers(ctx, 0); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSlowConsumerIsDroppedWithoutBlockingOthers(t *testing.T) {
	const queueSize = 8
	f := newFixture(t, wsgraphql.Config{QueueSize: queueSize}, true)
	ctx := testContext(t)

	// The slow client reads nothing after its ack; its socket buffers are tiny.
	slow := f.dial(t, dialOptions{protocols: []string{tws}, smallRecvBuf: true})
	slow.send(message{Type: "connection_init", Payload: raw(`{"token":"alice-token"}`)})
	slow.expect("connection_ack")
	slow.subscribe("subscribe", "1", `subscription { events { cursor payload } }`)

	// The other client reads everything, on another socket.
	fast := f.dialInit(t, tws)
	fast.subscribe("subscribe", "1", eventsQuery)
	fastGot := make(chan string, 1)
	go func() {
		defer close(fastGot)
		for {
			m, err := fast.next()
			if err != nil || m.Type != "next" {
				return
			}
			var p struct {
				Data struct{ Events struct{ Cursor string } }
			}
			_ = json.Unmarshal(m.Payload, &p)
			fastGot <- p.Data.Events.Cursor
		}
	}()
	if err := f.src.WaitSubscribers(ctx, 2); err != nil {
		t.Fatal(err)
	}

	// Publish in lockstep with the fast client until the slow one is dropped. Publish
	// blocks while any subscriber's transport does not take the event, so reaching the
	// drop at all shows the stalled socket never held up the publisher or the fast client.
	publish := func() {
		t.Helper()
		ev := f.src.Event(8 << 10)
		if err := f.src.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		want := string(scalar.CursorFor(int64(ev.ID)))
		select {
		case got := <-fastGot:
			if got != want {
				t.Fatalf("fast client: got cursor %s, want %s", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("fast client did not receive event %d", ev.ID)
		}
	}
	published := 0
	for f.tr.Stats().SlowConsumers == 0 {
		if published == 10000 {
			t.Fatal("the slow client was never dropped")
		}
		publish()
		published++
	}
	for range 5 {
		publish()
	}
	if st := f.tr.Stats(); st.PeakQueued != queueSize {
		t.Errorf("peak queued frames: got %d, want exactly the bound %d", st.PeakQueued, queueSize)
	}

	// Now the slow client reads: events in order without a gap, then SLOW_CONSUMER with the
	// cursor of the last event it was sent.
	var last string
	for i := 1; ; i++ {
		m := slow.read()
		if m.Type == "error" {
			var errs []struct {
				Message    string
				Extensions struct{ Code, Cursor string }
			}
			if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) != 1 {
				t.Fatalf("error payload %s: %v", m.Payload, err)
			}
			if errs[0].Extensions.Code != "SLOW_CONSUMER" {
				t.Errorf("code: got %s, want SLOW_CONSUMER", errs[0].Extensions.Code)
			}
			if last == "" {
				t.Fatal("the slow client got no event before being dropped; the test proves nothing")
			}
			if errs[0].Extensions.Cursor != last {
				t.Errorf("resume cursor: got %q, want the last sent %q", errs[0].Extensions.Cursor, last)
			}
			break
		}
		if m.Type != "next" {
			t.Fatalf("got %s, want next or error", m.Type)
		}
		last = eventCursor(t, m)
		if want := string(scalar.CursorFor(int64(i))); last != want {
			t.Fatalf("event %d: got cursor %s, want %s", i, last, want)
		}
	}
	if st := f.tr.Stats(); st.SlowConsumers != 1 || st.PeakQueued > queueSize {
		t.Errorf("stats: got %+v, want 1 slow consumer and at most %d queued", st, queueSize)
	}

	// The operation ended (its resolver's context too) without complete, and the socket lives on.
	if err := f.src.WaitSubscribers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	slow.subscribe("subscribe", "2", viewerQuery)
	for {
		m := slow.read()
		if m.ID == "1" {
			t.Fatalf("got %s for the dropped operation after its error", m.Type)
		}
		if m.ID == "2" && m.Type == "complete" {
			break
		}
	}
}

func TestReplayIsNeverDropped(t *testing.T) {
	const queueSize, stored = 8, 60
	f := newFixture(t, wsgraphql.Config{QueueSize: queueSize}, true)
	ctx := testContext(t)
	for range stored {
		f.src.Store(f.src.Event(2 << 10))
	}
	c := f.dial(t, dialOptions{protocols: []string{tws}, smallRecvBuf: true})
	c.send(message{Type: "connection_init", Payload: raw(`{"token":"alice-token"}`)})
	c.expect("connection_ack")
	c.subscribe("subscribe", "1", fmt.Sprintf(`subscription { events(after: %q) { cursor payload } }`, scalar.CursorFor(0)))

	// Not reading, the client lets the queue fill up; replay then waits instead of failing.
	waitFor(t, "the queue to fill", func() bool { return f.tr.Stats().PeakQueued == queueSize })
	for i := 1; i <= stored; i++ {
		m := c.expect("next")
		if got, want := eventCursor(t, m), string(scalar.CursorFor(int64(i))); got != want {
			t.Fatalf("replayed event %d: got cursor %s, want %s", i, got, want)
		}
	}
	// After the replay, live events follow.
	ev := f.src.Event(0)
	if err := f.src.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if got, want := eventCursor(t, c.expect("next")), string(scalar.CursorFor(int64(ev.ID))); got != want {
		t.Fatalf("live event: got cursor %s, want %s", got, want)
	}
	if st := f.tr.Stats(); st.SlowConsumers != 0 || st.PeakQueued != queueSize {
		t.Errorf("stats: got %+v, want no slow consumer and a peak of %d", st, queueSize)
	}
}

func TestBlockedWriteDropsTheSocket(t *testing.T) {
	f := newFixture(t, wsgraphql.Config{WriteTimeout: 100 * time.Millisecond}, true)
	ctx := testContext(t)
	c := f.dial(t, dialOptions{protocols: []string{tws}, smallRecvBuf: true})
	c.send(message{Type: "connection_init", Payload: raw(`{"token":"alice-token"}`)})
	c.expect("connection_ack")
	c.subscribe("subscribe", "1", `subscription { events { cursor payload } }`)
	if err := f.src.WaitSubscribers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Publish until the writer is stalled for good (the subscription overflows or the socket
	// is already gone); then the write deadline drops the socket.
	for st := f.tr.Stats(); st.Connections > 0 && st.SlowConsumers == 0; st = f.tr.Stats() {
		if err := f.src.Publish(ctx, f.src.Event(8<<10)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the socket to be dropped", func() bool { return f.tr.Stats().Connections == 0 })
	if code := c.closeCode(); code != websocket.CloseAbnormalClosure {
		t.Errorf("client saw close %d, want the connection dropped (1006)", code)
	}
}

func TestShutdownClosesSocketsWith1001(t *testing.T) {
	f := newFixture(t, wsgraphql.Config{}, false)
	ctx := testContext(t)
	a := f.dialInit(t, tws)
	a.subscribe("subscribe", "1", eventsQuery)
	b := f.dialInit(t, legacy)
	b.subscribe("start", "1", eventsQuery)
	pending := f.dial(t, dialOptions{protocols: []string{tws}}) // not initialised yet
	if err := f.src.WaitSubscribers(ctx, 2); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- f.tr.Shutdown(ctx) }()
	for _, c := range []*client{a, b, pending} {
		if code := c.closeCode(); code != websocket.CloseGoingAway {
			t.Errorf("close code: got %d, want 1001", code)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if st := f.tr.Stats(); st.Connections != 0 || st.Operations != 0 {
		t.Errorf("after shutdown: got %+v, want no connections or operations", st)
	}
	if err := f.src.WaitSubscribers(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// Later upgrades are closed at once.
	late := f.dial(t, dialOptions{protocols: []string{tws}})
	late.expectClose(websocket.CloseGoingAway)
}

func TestCheckOrigin(t *testing.T) {
	f := newFixture(t, wsgraphql.Config{
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "https://admin.example" },
	}, false)
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"https://admin.example", true},
		{"https://evil.example", false},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			d := websocket.Dialer{Subprotocols: []string{tws}, HandshakeTimeout: wait}
			ws, resp, err := d.Dial(f.url, http.Header{"Origin": {tc.origin}})
			if tc.ok {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				ws.Close()
				return
			}
			if err == nil {
				ws.Close()
				t.Fatal("dial: got a connection, want it refused")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("dial: got %v, want HTTP 403", err)
			}
		})
	}
}

func TestWebSocketLevelPingsKeepPeerAlive(t *testing.T) {
	f := newFixture(t, wsgraphql.Config{PingInterval: 50 * time.Millisecond}, false)
	c := f.dialInit(t, tws)
	pongs := make(chan struct{}, 16)
	c.ws.SetPongHandler(func(string) error {
		pongs <- struct{}{}
		return nil
	})
	// The client answers the protocol's pings with WebSocket pings only.
	for range 5 {
		c.expect("ping")
		if err := c.ws.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(wait)); err != nil {
			t.Fatal(err)
		}
	}
	c.subscribe("subscribe", "1", viewerQuery)
	for {
		m := c.read()
		if m.Type == "ping" {
			continue
		}
		if m.Type != "next" {
			t.Fatalf("got %s, want next", m.Type)
		}
		break
	}
	if len(pongs) == 0 {
		t.Error("got no WebSocket pong for the client's pings")
	}
}
