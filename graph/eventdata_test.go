package graph

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/eventgate/eventgate/graph/model"
	"github.com/eventgate/eventgate/server/catalog"
)

func ptr[T any](v T) *T { return &v }

func TestEventData(t *testing.T) {
	closed := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	tests := []struct {
		name      string
		eventType string
		payload   string
		want      model.EventData
	}{
		{
			name:      "user.created full",
			eventType: "user.created",
			payload: `{"user_id":42,"telegram_id":7123456789012,"username":"ivan","first_name":"Ivan","last_name":"Petrov",` +
				`"email":"ivan@example.com","auth_type":"telegram","referral_code":"ref_42","referred_by_id":7,"extra":{"kept":true}}`,
			want: &model.UserCreated{
				UserID: 42, TelegramID: ptr(int64(7123456789012)), Username: ptr("ivan"), FirstName: ptr("Ivan"),
				LastName: ptr("Petrov"), Email: ptr("ivan@example.com"), AuthType: ptr("telegram"),
				ReferralCode: ptr("ref_42"), ReferredByID: ptr(int64(7)),
			},
		},
		{
			name:      "user.created minimal with nulls",
			eventType: "user.created",
			payload:   `{"user_id":42,"telegram_id":null,"email":null}`,
			want:      &model.UserCreated{UserID: 42},
		},
		{
			name:      "payment.completed",
			eventType: "payment.completed",
			payload: `{"transaction_id":1001,"user_id":42,"type":"deposit","amount_kopeks":19900,"amount_rubles":199.5,` +
				`"payment_method":"yookassa","external_id":"2c5d","is_completed":true,"description":"Top-up"}`,
			want: &model.PaymentCompleted{
				TransactionID: 1001, UserID: 42, Type: ptr("deposit"), AmountKopeks: 19900, AmountRubles: ptr(199.5),
				PaymentMethod: ptr("yookassa"), ExternalID: ptr("2c5d"), IsCompleted: ptr(true), Description: ptr("Top-up"),
			},
		},
		{
			name:      "payment.completed integral spellings",
			eventType: "payment.completed",
			payload:   `{"transaction_id":1.0,"user_id":7123456789012,"amount_kopeks":1.99e4,"is_completed":false}`,
			want:      &model.PaymentCompleted{TransactionID: 1, UserID: 7123456789012, AmountKopeks: 19900, IsCompleted: ptr(false)},
		},
		{
			name:      "transaction.created",
			eventType: "transaction.created",
			payload:   `{"transaction_id":1002,"user_id":42,"type":"subscription_payment","amount_kopeks":-19900,"payment_method":null}`,
			want: &model.TransactionCreated{
				TransactionID: 1002, UserID: 42, Type: ptr("subscription_payment"), AmountKopeks: -19900,
			},
		},
		{
			name:      "ticket.created",
			eventType: "ticket.created",
			payload:   `{"ticket_id":77,"user_id":42,"title":"VPN does not connect","status":"open","priority":"urgent","has_media":true}`,
			want: &model.TicketCreated{
				TicketID: 77, UserID: 42, Title: "VPN does not connect", Status: ptr("open"),
				Priority: ptr(model.TicketPriorityUrgent), HasMedia: ptr(true),
			},
		},
		{
			name:      "ticket.created priority null",
			eventType: "ticket.created",
			payload:   `{"ticket_id":77,"user_id":42,"title":"t","priority":null}`,
			want:      &model.TicketCreated{TicketID: 77, UserID: 42, Title: "t"},
		},
		{
			name:      "ticket.created priority outside the enum",
			eventType: "ticket.created",
			payload:   `{"ticket_id":77,"user_id":42,"title":"t","priority":"HIGH"}`,
			want:      &model.TicketCreated{TicketID: 77, UserID: 42, Title: "t"},
		},
		{
			name:      "ticket.status_changed",
			eventType: "ticket.status_changed",
			payload:   `{"ticket_id":77,"user_id":42,"old_status":"open","new_status":"closed","closed_at":"2026-01-02T18:04:05+03:00"}`,
			want: &model.TicketStatusChanged{
				TicketID: 77, UserID: ptr(int64(42)), OldStatus: "open", NewStatus: "closed", ClosedAt: &closed,
			},
		},
		{
			name:      "ticket.status_changed not closed",
			eventType: "ticket.status_changed",
			payload:   `{"ticket_id":77,"old_status":"open","new_status":"answered","closed_at":null}`,
			want:      &model.TicketStatusChanged{TicketID: 77, OldStatus: "open", NewStatus: "answered"},
		},
		{
			name:      "ticket.message_added",
			eventType: "ticket.message_added",
			payload: `{"ticket_id":77,"message_id":501,"user_id":42,"is_from_admin":true,"message_text":"Reinstall the profile.",` +
				`"has_media":false,"status":"answered"}`,
			want: &model.TicketMessageAdded{
				TicketID: 77, MessageID: 501, UserID: ptr(int64(42)), IsFromAdmin: true,
				MessageText: ptr("Reinstall the profile."), HasMedia: ptr(false), Status: ptr("answered"),
			},
		},
		{
			name:      "webhook.test",
			eventType: "webhook.test",
			payload:   `{"webhook_id":"12","message":"hello"}`,
			want:      &model.WebhookTest{WebhookID: ptr("12"), Message: ptr("hello")},
		},
		{
			name:      "webhook.disabled",
			eventType: "webhook.disabled",
			payload:   `{"webhook_id":"12","reason":"410 Gone"}`,
			want:      &model.WebhookDisabled{WebhookID: ptr("12"), Reason: ptr("410 Gone")},
		},
		{
			name:      "keys match exactly",
			eventType: "webhook.disabled",
			payload:   `{"Webhook_ID":"12","REASON":"no"}`,
			want:      &model.WebhookDisabled{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := eventData(tt.eventType, []byte(tt.payload))
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestEventDataClosedAtInstant(t *testing.T) {
	got, err := eventData("ticket.status_changed", []byte(`{"ticket_id":1,"old_status":"a","new_status":"b","closed_at":"2026-01-02T18:04:05.25+03:00"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 1, 2, 15, 4, 5, 250_000_000, time.UTC)
	if c := got.(*model.TicketStatusChanged).ClosedAt; c == nil || !c.Equal(want) {
		t.Errorf("got closedAt %v, want %v", c, want)
	}
}

// TestEventDataCoversCatalog makes sure a type added to the catalog gets typed data, checked on each
// type's published example.
func TestEventDataCoversCatalog(t *testing.T) {
	for _, typ := range catalog.All() {
		t.Run(typ.Name, func(t *testing.T) {
			var schema struct {
				Examples []json.RawMessage `json:"examples"`
			}
			if err := json.Unmarshal(typ.Schema, &schema); err != nil || len(schema.Examples) == 0 {
				t.Fatalf("no example in the schema: %v", err)
			}
			got, err := eventData(typ.Name, schema.Examples[0])
			if err != nil || got == nil {
				t.Errorf("got %v, %v; want typed data", got, err)
			}
		})
	}
}

func TestEventDataUnknownType(t *testing.T) {
	got, err := eventData("user.deleted", []byte(`{"user_id":1}`))
	if got != nil || err != nil {
		t.Errorf("got %v, %v; want nil, nil", got, err)
	}
}

func TestEventDataBadPayload(t *testing.T) {
	for _, payload := range []string{`{"user_id":1.5}`, `{"user_id":"1"}`, `[1]`, `{`} {
		got, err := eventData("user.created", []byte(payload))
		if err == nil {
			t.Errorf("%s: got %#v, nil; want an error", payload, got)
		}
	}
}
