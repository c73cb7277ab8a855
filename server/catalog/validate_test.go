package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/eventgate/eventgate/server/apperr"
)

// wantOK fails the test unless Validate accepts payload.
func wantOK(t *testing.T, eventType, payload string) {
	t.Helper()
	if err := Validate(eventType, []byte(payload)); err != nil {
		t.Errorf("Validate(%s, %s): got %v, want nil", eventType, payload, err)
	}
}

// wantBad fails the test unless Validate refuses payload with BAD_USER_INPUT on field, with a
// message that starts with msgPrefix.
func wantBad(t *testing.T, eventType, payload, field, msgPrefix string) {
	t.Helper()
	err := Validate(eventType, []byte(payload))
	if err == nil {
		t.Errorf("Validate(%s, %s): got nil, want an error on %s", eventType, payload, field)
		return
	}
	e, ok := apperr.As(err)
	if !ok {
		t.Errorf("Validate(%s, %s): got %T %v, want *apperr.Error", eventType, payload, err, err)
		return
	}
	if e.Code != apperr.BadUserInput || e.Field != field || !strings.HasPrefix(e.Message, msgPrefix) {
		t.Errorf("Validate(%s, %s): got %s %q %q, want %s %q %q…", eventType, payload,
			e.Code, e.Field, e.Message, apperr.BadUserInput, field, msgPrefix)
	}
}

// withField returns the example payload of s with key set to the JSON value (or removed when value
// is empty), keeping the order of the other keys.
func withField(t *testing.T, s *schema, key, value string) string {
	t.Helper()
	var b strings.Builder
	b.WriteByte('{')
	n := 0
	found := false
	err := walkObject([]byte(s.example), func(k string, v json.RawMessage) {
		if k == key {
			found = true
			if value == "" {
				return
			}
			v = json.RawMessage(value)
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(v)
	})
	if err != nil {
		t.Fatalf("example of %s: %v", s.name, err)
	}
	if !found && value != "" {
		if n > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(key)
		b.Write(kb)
		b.WriteByte(':')
		b.WriteString(value)
	}
	b.WriteByte('}')
	return b.String()
}

// wrongValue is a value of a JSON type other than k.
func wrongValue(k kind) (value, got string) {
	switch k {
	case kindInteger:
		return `"12"`, "a string"
	case kindNumber:
		return `"1.5"`, "a string"
	case kindString:
		return `12`, "a number"
	case kindBoolean:
		return `"true"`, "a string"
	}
	panic("unknown kind")
}

// TestEveryType runs the same checks against every type of the catalog and every one of its
// fields.
func TestEveryType(t *testing.T) {
	for i := range table {
		s := &table[i]
		t.Run(s.name, func(t *testing.T) {
			wantOK(t, s.name, s.example)

			for _, p := range s.properties {
				field := "payload." + p.name
				t.Run(p.name, func(t *testing.T) {
					if p.required {
						wantBad(t, s.name, withField(t, s, p.name, ""), field, "is required")
						wantBad(t, s.name, withField(t, s, p.name, "null"), field, "must not be null")
					} else {
						wantOK(t, s.name, withField(t, s, p.name, ""))
						wantOK(t, s.name, withField(t, s, p.name, "null"))
					}
					value, got := wrongValue(p.kind)
					wantBad(t, s.name, withField(t, s, p.name, value), field, "expected "+p.kind.expected())
					err := Validate(s.name, []byte(withField(t, s, p.name, value)))
					if e, _ := apperr.As(err); e == nil || !strings.HasSuffix(e.Message, "got "+got) {
						t.Errorf("wrong type: got %v, want a message ending in %q", err, "got "+got)
					}
					for _, other := range []string{`{}`, `[]`, `[1]`, `{"a":1}`} {
						wantBad(t, s.name, withField(t, s, p.name, other), field, "expected")
					}
				})
			}

			// Extra keys of any kind are allowed.
			wantOK(t, s.name, withField(t, s, "x_future_field", `{"nested":[1,2,{"deep":null}],"n":1e400}`))
			wantOK(t, s.name, withField(t, s, "X_"+strings.ToUpper(s.properties[0].name), `"not checked"`))

			// Nothing but the required fields.
			var b strings.Builder
			b.WriteByte('{')
			err := walkObject([]byte(s.example), func(k string, v json.RawMessage) {
				for _, p := range s.properties {
					if p.name == k && p.required {
						if b.Len() > 1 {
							b.WriteByte(',')
						}
						b.WriteString(`"` + k + `":`)
						b.Write(v)
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			b.WriteByte('}')
			wantOK(t, s.name, b.String())

			// Not objects.
			for _, payload := range []string{`null`, `[]`, `[{}]`, `"{}"`, `12`, `true`} {
				wantBad(t, s.name, payload, "payload", "must be a JSON object")
			}
		})
	}
}

func TestValidate(t *testing.T) {
	const (
		user    = "user.created"
		pay     = "payment.completed"
		ticket  = "ticket.created"
		status  = "ticket.status_changed"
		message = "ticket.message_added"
	)
	tests := []struct {
		name, eventType, payload string
		// field is empty for a payload that is valid.
		field, msg string
	}{
		{"telegram id beyond 32 bits", user, `{"user_id":1,"telegram_id":7123456789012}`, "", ""},
		{"largest int64", user, `{"user_id":9223372036854775807}`, "", ""},
		{"smallest int64", user, `{"user_id":-9223372036854775808}`, "", ""},
		{"int64 overflow", user, `{"user_id":9223372036854775808}`, "payload.user_id", "expected a 64-bit integer, got a number out of its range"},
		{"int64 underflow", user, `{"user_id":-9223372036854775809}`, "payload.user_id", "expected a 64-bit integer, got a number out of its range"},
		{"fraction", user, `{"user_id":1.5}`, "payload.user_id", "expected a 64-bit integer, got a fraction"},
		{"tiny fraction", user, `{"user_id":1.0000000000000000000001}`, "payload.user_id", "expected a 64-bit integer, got a fraction"},
		{"huge exponent", user, `{"user_id":1e30}`, "payload.user_id", "expected a 64-bit integer, got a number out of its range"},
		{"absurd exponent", user, `{"user_id":1e999999999999999999999}`, "payload.user_id", "expected a 64-bit integer, got a number out of its range"},
		{"absurd negative exponent", user, `{"user_id":1e-999999999999999999999}`, "payload.user_id", "expected a 64-bit integer, got a fraction"},
		{"zero with absurd exponent", user, `{"user_id":0e999999999999999999999}`, "", ""},
		{"integral with point", user, `{"user_id":42.0}`, "", ""},
		{"integral with exponent", user, `{"user_id":4.2e1}`, "", ""},
		{"integral with negative exponent", user, `{"user_id":4200e-2}`, "", ""},
		{"negative zero", user, `{"user_id":-0}`, "", ""},
		{"quoted number", user, `{"user_id":"12"}`, "payload.user_id", "expected a 64-bit integer, got a string"},
		{"optional int null", user, `{"user_id":1,"telegram_id":null,"referred_by_id":null}`, "", ""},
		{"optional int quoted", user, `{"user_id":1,"telegram_id":"7123456789012"}`, "payload.telegram_id", "expected a 64-bit integer or null, got a string"},
		{"boolean for int", user, `{"user_id":true}`, "payload.user_id", "expected a 64-bit integer, got a boolean"},

		{"amount in rubles", pay, `{"transaction_id":1,"user_id":2,"amount_kopeks":19900,"amount_rubles":199.5}`, "", ""},
		{"rubles out of float range", pay, `{"transaction_id":1,"user_id":2,"amount_kopeks":1,"amount_rubles":1e400}`, "payload.amount_rubles", "expected a number or null, got one out of the float64 range"},
		{"rubles underflow is zero", pay, `{"transaction_id":1,"user_id":2,"amount_kopeks":1,"amount_rubles":1e-400}`, "", ""},
		{"kopeks as fraction", pay, `{"transaction_id":1,"user_id":2,"amount_kopeks":199.5}`, "payload.amount_kopeks", "expected a 64-bit integer, got a fraction"},
		{"is_completed as string", pay, `{"transaction_id":1,"user_id":2,"amount_kopeks":1,"is_completed":"yes"}`, "payload.is_completed", "expected a boolean or null, got a string"},
		{"first problem in schema order", pay, `{"amount_kopeks":"x","user_id":"y"}`, "payload.transaction_id", "is required"},
		{"schema order, not document order", pay, `{"amount_kopeks":"x","user_id":"y","transaction_id":1}`, "payload.user_id", "expected a 64-bit integer, got a string"},
		{"repeated key: every occurrence checked", pay, `{"transaction_id":1,"user_id":2,"amount_kopeks":"x","amount_kopeks":3}`, "payload.amount_kopeks", "expected a 64-bit integer"},
		{"repeated key: both valid", pay, `{"transaction_id":1,"user_id":2,"amount_kopeks":1,"amount_kopeks":3}`, "", ""},
		{"escaped key is the same key", pay, `{"transaction_id":1,"user_id":2,"amount_\u006bopeks":"x"}`, "payload.amount_kopeks", "expected a 64-bit integer"},
		{"keys are case sensitive", pay, `{"transaction_id":1,"user_id":2,"Amount_Kopeks":5}`, "payload.amount_kopeks", "is required"},

		{"priority", ticket, `{"ticket_id":1,"user_id":2,"title":"t","priority":"urgent"}`, "", ""},
		{"priority null", ticket, `{"ticket_id":1,"user_id":2,"title":"t","priority":null}`, "", ""},
		{"priority escaped", ticket, `{"ticket_id":1,"user_id":2,"title":"t","priority":"\u006cow"}`, "", ""},
		{"priority upper case", ticket, `{"ticket_id":1,"user_id":2,"title":"t","priority":"HIGH"}`, "payload.priority", "must be one of low, normal, high, urgent"},
		{"priority unknown", ticket, `{"ticket_id":1,"user_id":2,"title":"t","priority":"critical"}`, "payload.priority", "must be one of low, normal, high, urgent"},
		{"priority empty", ticket, `{"ticket_id":1,"user_id":2,"title":"t","priority":""}`, "payload.priority", "must be one of low, normal, high, urgent"},
		{"priority number", ticket, `{"ticket_id":1,"user_id":2,"title":"t","priority":1}`, "payload.priority", "expected a string or null, got a number"},
		{"empty title is a string", ticket, `{"ticket_id":1,"user_id":2,"title":""}`, "", ""},
		{"unicode title", ticket, `{"ticket_id":1,"user_id":2,"title":"Не работает VPN 🙁 \ud83d\ude00"}`, "", ""},

		{"closed_at", status, `{"ticket_id":1,"old_status":"open","new_status":"closed","closed_at":"2026-01-02T15:04:05Z"}`, "", ""},
		{"closed_at with offset and fraction", status, `{"ticket_id":1,"old_status":"open","new_status":"closed","closed_at":"2026-01-02T18:04:05.123456+03:00"}`, "", ""},
		{"closed_at null", status, `{"ticket_id":1,"old_status":"open","new_status":"closed","closed_at":null}`, "", ""},
		{"closed_at date only", status, `{"ticket_id":1,"old_status":"open","new_status":"closed","closed_at":"2026-01-02"}`, "payload.closed_at", "must be an RFC 3339 date-time"},
		{"closed_at without zone", status, `{"ticket_id":1,"old_status":"open","new_status":"closed","closed_at":"2026-01-02T15:04:05"}`, "payload.closed_at", "must be an RFC 3339 date-time"},
		{"closed_at with space", status, `{"ticket_id":1,"old_status":"open","new_status":"closed","closed_at":"2026-01-02 15:04:05Z"}`, "payload.closed_at", "must be an RFC 3339 date-time"},
		{"closed_at hour 25", status, `{"ticket_id":1,"old_status":"open","new_status":"closed","closed_at":"2026-01-02T25:04:05Z"}`, "payload.closed_at", "must be an RFC 3339 date-time"},
		{"closed_at unix time", status, `{"ticket_id":1,"old_status":"open","new_status":"closed","closed_at":1767366245}`, "payload.closed_at", "expected a string or null, got a number"},
		{"new_status missing", status, `{"ticket_id":1,"old_status":"open"}`, "payload.new_status", "is required"},

		{"is_from_admin false", message, `{"ticket_id":1,"message_id":2,"is_from_admin":false}`, "", ""},
		{"is_from_admin as number", message, `{"ticket_id":1,"message_id":2,"is_from_admin":0}`, "payload.is_from_admin", "expected a boolean, got a number"},

		{"empty object for reserved type", "webhook.test", `{}`, "", ""},
		{"webhook id as number", "webhook.disabled", `{"webhook_id":12}`, "payload.webhook_id", "expected a string or null, got a number"},

		{"unknown type", "user.deleted", `{}`, "type", `unknown event type "user.deleted"`},
		{"empty type", "", `{}`, "type", `unknown event type ""`},

		{"whitespace around", user, " \n\t{ \"user_id\" : 1 } \r\n", "", ""},
		{"empty payload", user, ``, "payload", "must be a JSON object, got nothing"},
		{"blank payload", user, `   `, "payload", "must be a JSON object, got nothing"},
		{"null payload", user, `null`, "payload", "must be a JSON object, got null"},
		{"array payload", user, `[{"user_id":1}]`, "payload", "must be a JSON object, got an array"},
		{"string payload", user, `"{\"user_id\":1}"`, "payload", "must be a JSON object, got a string"},
		{"number payload", user, `1e400`, "payload", "must be a JSON object, got a number"},
		{"truncated", user, `{"user_id":1`, "payload", "is not valid JSON"},
		{"trailing comma", user, `{"user_id":1,}`, "payload", "is not valid JSON"},
		{"two objects", user, `{"user_id":1}{}`, "payload", "is not valid JSON"},
		{"leading zero", user, `{"user_id":01}`, "payload", "is not valid JSON"},
		{"bare word", user, `{"user_id":1,"x":nul}`, "payload", "is not valid JSON"},
		{"single quotes", user, `{'user_id':1}`, "payload", "is not valid JSON"},
		{"control character in string", user, "{\"user_id\":1,\"x\":\"a\tb\"}", "payload", "is not valid JSON"},
		{"bad escape", user, `{"user_id":1,"x":"\q"}`, "payload", "is not valid JSON"},
		{"short unicode escape", user, `{"user_id":1,"x":"\u12"}`, "payload", "is not valid JSON"},
		{"NaN", user, `{"user_id":NaN}`, "payload", "is not valid JSON"},
		{"invalid UTF-8", user, "{\"user_id\":1,\"x\":\"\xff\"}", "payload", "is not valid UTF-8"},
		{"lone surrogate escape is valid JSON", user, `{"user_id":1,"x":"\ud800"}`, "", ""},
		{"syntax error beats field errors", user, `{"user_id":"x",}`, "payload", "is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.field == "" {
				wantOK(t, tt.eventType, tt.payload)
				return
			}
			wantBad(t, tt.eventType, tt.payload, tt.field, tt.msg)
		})
	}
}

func TestValidateSyntaxErrorNamesThePlace(t *testing.T) {
	err := Validate("user.created", []byte(`{"user_id":1,}`))
	e, ok := apperr.As(err)
	if !ok || !strings.Contains(e.Message, "(at byte 14)") {
		t.Errorf("got %v, want a message with the offset of the problem", err)
	}
}

func TestValidateDepth(t *testing.T) {
	nest := func(n int) []byte {
		// The payload object itself is the first level.
		return []byte(`{"user_id":1,"x":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + "}")
	}
	ok := nest(maxDepth)
	if !json.Valid(ok) {
		t.Fatal("encoding/json refuses the deepest payload the test expects to pass")
	}
	if err := Validate("user.created", ok); err != nil {
		t.Errorf("%d levels: got %v, want nil", maxDepth, err)
	}
	deep := nest(maxDepth + 1)
	if json.Valid(deep) {
		t.Fatal("encoding/json accepts the payload the test expects to fail")
	}
	wantBad(t, "user.created", string(deep), "payload", "is not valid JSON")
}

func TestValidateDoesNotChangePayload(t *testing.T) {
	payload := []byte(`{"user_id":1,"Extra":{"kept":[1,2.5,"x"]},"telegram_id":null}`)
	before := bytes.Clone(payload)
	if err := Validate("user.created", payload); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(payload, before) {
		t.Errorf("got %s, want %s", payload, before)
	}
}

func TestValidateErrorUnwraps(t *testing.T) {
	err := Validate("user.created", []byte(`{}`))
	var e *apperr.Error
	if !errors.As(err, &e) || e.Code != apperr.BadUserInput {
		t.Errorf("got %#v, want an *apperr.Error with code %s", err, apperr.BadUserInput)
	}
	if got, want := err.Error(), "payload.user_id: is required"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseInt(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		pr   problem
	}{
		{"0", 0, problemNone},
		{"-0", 0, problemNone},
		{"0.000", 0, problemNone},
		{"0e-5", 0, problemNone},
		{"7", 7, problemNone},
		{"-7", -7, problemNone},
		{"7123456789012", 7123456789012, problemNone},
		{"9223372036854775807", math.MaxInt64, problemNone},
		{"-9223372036854775808", math.MinInt64, problemNone},
		{"9223372036854775808", 0, problemRange},
		{"-9223372036854775809", 0, problemRange},
		{"18446744073709551616", 0, problemRange},
		{"99999999999999999999", 0, problemRange},
		{"9.223372036854775807e18", math.MaxInt64, problemNone},
		{"92233720368547758070e-1", math.MaxInt64, problemNone},
		{"0.00000000000000000000000000009223372036854775807e47", math.MaxInt64, problemNone},
		{"1e18", 1e18, problemNone},
		{"1e19", 0, problemRange},
		{"1E2", 100, problemNone},
		{"1e+2", 100, problemNone},
		{"12.50e1", 125, problemNone},
		{"1250e-1", 125, problemNone},
		{"1255e-1", 0, problemFraction},
		{"1.5", 0, problemFraction},
		{"-0.5", 0, problemFraction},
		{"1e-1", 0, problemFraction},
		{"1e30", 0, problemRange},
		{"1" + strings.Repeat("0", 30) + "e-30", 1, problemNone},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if end := scanNumber([]byte(tt.in), 0); end != len(tt.in) {
				t.Fatalf("scanNumber: got %d, want %d", end, len(tt.in))
			}
			got, pr := parseInt([]byte(tt.in))
			if got != tt.want || pr != tt.pr {
				t.Errorf("got %d, problem %d; want %d, problem %d", got, pr, tt.want, tt.pr)
			}
		})
	}
}

func TestScanNumber(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"0", 1}, {"-0", 2}, {"12,", 2}, {"1.5}", 3}, {"1e5 ", 3}, {"1E-5", 4}, {"01", 1},
		{"-", -1}, {"+1", -1}, {".5", -1}, {"1.", -1}, {"1e", -1}, {"1e+", -1}, {"-a", -1}, {"", -1},
	}
	for _, tt := range tests {
		if got := scanNumber([]byte(tt.in), 0); got != tt.want {
			t.Errorf("scanNumber(%q): got %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestIntUnmarshalJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    Int
		wantErr bool
	}{
		{`7123456789012`, 7123456789012, false},
		{`42.0`, 42, false},
		{`4.2e1`, 42, false},
		{`null`, 99, false}, // unchanged
		{`1.5`, 0, true},
		{`"12"`, 0, true},
		{`1e30`, 0, true},
		{`true`, 0, true},
		{`12x`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := Int(99)
			err := got.UnmarshalJSON([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	p, err := Decode[Payment]([]byte(`{"transaction_id":1.0,"user_id":7123456789012,"amount_kopeks":1e3,"amount_rubles":null,` +
		`"type":"deposit","extra":{"a":1},"User_ID":"ignored","payment_method":"x","payment_method":"card"}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.TransactionID != 1 || p.UserID != 7123456789012 || p.AmountKopeks != 1000 {
		t.Errorf("got ids %d %d %d, want 1 7123456789012 1000", p.TransactionID, p.UserID, p.AmountKopeks)
	}
	if p.AmountRubles != nil || p.Description != nil || p.IsCompleted != nil {
		t.Errorf("got %v %v %v, want absent and null fields nil", p.AmountRubles, p.Description, p.IsCompleted)
	}
	if p.Type == nil || *p.Type != "deposit" {
		t.Errorf("got type %v, want deposit", p.Type)
	}
	if p.PaymentMethod == nil || *p.PaymentMethod != "card" {
		t.Errorf("got payment method %v, want the last occurrence, card", p.PaymentMethod)
	}

	ts, err := Decode[TicketStatusChanged]([]byte(`{"ticket_id":1,"old_status":"a","new_status":"b","closed_at":"2026-01-02T18:04:05+03:00"}`))
	if err != nil {
		t.Fatal(err)
	}
	if ts.ClosedAt == nil || ts.ClosedAt.UTC().Format("2006-01-02T15:04:05Z07:00") != "2026-01-02T15:04:05Z" {
		t.Errorf("got closed_at %v, want 2026-01-02T15:04:05Z", ts.ClosedAt)
	}

	if _, err := Decode[Payment]([]byte(`{"transaction_id":1.5}`)); err == nil || !strings.Contains(err.Error(), "transaction_id") {
		t.Errorf("got %v, want an error naming transaction_id", err)
	}
	if _, err := Decode[Payment]([]byte(`[1]`)); err == nil {
		t.Error("got nil for an array, want an error")
	}
}

// TestValidateAgreesWithPublishedSchema runs Validate and the reference validator, which reads only
// the published JSON Schema, over a corpus; they must agree on every payload.
func TestValidateAgreesWithPublishedSchema(t *testing.T) {
	corpus := seedPayloads()
	for i := range table {
		s := &table[i]
		for _, payload := range corpus {
			compareWithReference(t, s, []byte(payload))
		}
	}
}

// seedPayloads is a corpus of payloads across all types, valid and not.
func seedPayloads() []string {
	corpus := []string{
		`{}`, `[]`, `null`, `{"user_id":1}`, `{"user_id":1.5}`, `{"user_id":"1"}`, `{"user_id":1e30}`,
		`{"user_id":1,"telegram_id":7123456789012,"referred_by_id":null}`,
		`{"transaction_id":1,"user_id":2,"amount_kopeks":3,"amount_rubles":1e400}`,
		`{"transaction_id":1,"user_id":2,"amount_kopeks":3,"is_completed":null,"type":1}`,
		`{"ticket_id":1,"user_id":2,"title":"x","priority":"\u0075rgent","has_media":true}`,
		`{"ticket_id":1,"user_id":2,"title":"x","priority":"URGENT"}`,
		`{"ticket_id":1,"old_status":"a","new_status":"b","closed_at":"2026-01-02T15:04:05.5-01:30"}`,
		`{"ticket_id":1,"old_status":"a","new_status":"b","closed_at":"2026-13-02T15:04:05Z"}`,
		`{"ticket_id":1,"message_id":2,"is_from_admin":true,"is_from_admin":null}`,
		`{"webhook_id":"1","reason":null,"message":[]}`,
		`{"ticket_id":1,"ticket_id":2.5,"user_id":-0.0e9,"title":""}`,
	}
	for _, s := range table {
		corpus = append(corpus, s.example)
	}
	return corpus
}

// compareWithReference fails the test when Validate and the reference disagree on payload.
func compareWithReference(t *testing.T, s *schema, payload []byte) {
	t.Helper()
	err := Validate(s.name, payload)
	e, isApp := apperr.As(err)
	if err != nil && (!isApp || e.Code != apperr.BadUserInput) {
		t.Fatalf("%s %q: got %v, want nil or BAD_USER_INPUT", s.name, payload, err)
	}
	if !utf8.Valid(payload) {
		if err == nil || e.Field != "payload" {
			t.Fatalf("%s %q: got %v, want invalid UTF-8 refused on payload", s.name, payload, err)
		}
		return
	}
	bad, refErr := refValidate(s.marshal(), payload)
	switch {
	case errors.Is(refErr, errUndecided):
		return
	case refErr != nil:
		if err == nil || e.Field != "payload" {
			t.Fatalf("%s %q: reference says %v, got %v, want an error on payload", s.name, payload, refErr, err)
		}
	case len(bad) == 0:
		if err != nil {
			t.Fatalf("%s %q: reference accepts, got %v", s.name, payload, err)
		}
	default:
		if err == nil || e.Field != "payload."+bad[0] {
			t.Fatalf("%s %q: reference refuses %v, got %v, want an error on payload.%s", s.name, payload, bad, err, bad[0])
		}
	}
}

func FuzzValidate(f *testing.F) {
	for _, payload := range seedPayloads() {
		for i := range table {
			f.Add(uint8(i), []byte(payload))
		}
	}
	f.Fuzz(func(t *testing.T, typeIndex uint8, payload []byte) {
		s := &table[int(typeIndex)%len(table)]
		err := Validate(s.name, payload)
		if err == nil {
			if !json.Valid(payload) {
				t.Fatalf("accepted %q, which is not JSON", payload)
			}
			if trimmed := bytes.TrimLeft(payload, " \t\r\n"); trimmed[0] != '{' {
				t.Fatalf("accepted %q, which is not an object", payload)
			}
			// What Validate accepts, the typed data can be read from.
			if _, err := decodeAs(s.name, payload); err != nil {
				t.Fatalf("accepted %q, but Decode says %v", payload, err)
			}
		}
		compareWithReference(t, s, payload)
	})
}

func BenchmarkValidate(b *testing.B) {
	payload := []byte(`{"transaction_id":123456,"user_id":7123456789012,"type":"deposit","amount_kopeks":19900,` +
		`"amount_rubles":199.0,"payment_method":"yookassa","external_id":"2c5d1f3a-000f-5000-8000-18db351245c7",` +
		`"is_completed":true,"description":"Пополнение баланса","promo":{"code":"SPRING","percent":10}}`)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate("payment.completed", payload); err != nil {
			b.Fatal(err)
		}
	}
}
