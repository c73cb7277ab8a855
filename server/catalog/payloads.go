package catalog

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// The structs below are the payloads of the catalog as producers send them (snake_case keys), for
// code that reads a validated payload, such as the typed GraphQL data. Required fields are values,
// optional ones pointers that stay nil when the key is absent or null. Keys a struct does not list
// are ignored. A test holds each struct to its schema.

// UserCreated is the payload of user.created.
type UserCreated struct {
	UserID       Int     `json:"user_id"`
	TelegramID   *Int    `json:"telegram_id"`
	Username     *string `json:"username"`
	FirstName    *string `json:"first_name"`
	LastName     *string `json:"last_name"`
	Email        *string `json:"email"`
	AuthType     *string `json:"auth_type"`
	ReferralCode *string `json:"referral_code"`
	ReferredByID *Int    `json:"referred_by_id"`
}

// Payment is the payload of payment.completed and of transaction.created, which share it.
type Payment struct {
	TransactionID Int      `json:"transaction_id"`
	UserID        Int      `json:"user_id"`
	Type          *string  `json:"type"`
	AmountKopeks  Int      `json:"amount_kopeks"`
	AmountRubles  *float64 `json:"amount_rubles"`
	PaymentMethod *string  `json:"payment_method"`
	ExternalID    *string  `json:"external_id"`
	IsCompleted   *bool    `json:"is_completed"`
	Description   *string  `json:"description"`
}

// TicketCreated is the payload of ticket.created.
type TicketCreated struct {
	TicketID Int     `json:"ticket_id"`
	UserID   Int     `json:"user_id"`
	Title    string  `json:"title"`
	Status   *string `json:"status"`
	// Priority is one of low, normal, high, urgent.
	Priority *string `json:"priority"`
	HasMedia *bool   `json:"has_media"`
}

// TicketStatusChanged is the payload of ticket.status_changed.
type TicketStatusChanged struct {
	TicketID  Int        `json:"ticket_id"`
	UserID    *Int       `json:"user_id"`
	OldStatus string     `json:"old_status"`
	NewStatus string     `json:"new_status"`
	ClosedAt  *time.Time `json:"closed_at"`
}

// TicketMessageAdded is the payload of ticket.message_added.
type TicketMessageAdded struct {
	TicketID    Int     `json:"ticket_id"`
	MessageID   Int     `json:"message_id"`
	UserID      *Int    `json:"user_id"`
	IsFromAdmin bool    `json:"is_from_admin"`
	MessageText *string `json:"message_text"`
	HasMedia    *bool   `json:"has_media"`
	Status      *string `json:"status"`
}

// WebhookTest is the payload of webhook.test.
type WebhookTest struct {
	WebhookID *string `json:"webhook_id"`
	Message   *string `json:"message"`
}

// WebhookDisabled is the payload of webhook.disabled.
type WebhookDisabled struct {
	WebhookID *string `json:"webhook_id"`
	Reason    *string `json:"reason"`
}

// Decode reads a payload into a new T, one of the structs above. Unlike json.Unmarshal it matches
// keys exactly, as Validate does: encoding/json would also fill user_id from an extra "User_ID"
// key, which Validate never looked at. When a key repeats, the last occurrence wins.
func Decode[T any](payload []byte) (*T, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(payload, &members); err != nil {
		return nil, fmt.Errorf("decode payload: %w", err)
	}
	dst := new(T)
	v := reflect.ValueOf(dst).Elem()
	if v.Kind() != reflect.Struct {
		return nil, fmt.Errorf("decode payload: %T is not a struct", *dst)
	}
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		raw, ok := members[name]
		if !ok || name == "" || name == "-" {
			continue
		}
		if err := json.Unmarshal(raw, v.Field(i).Addr().Interface()); err != nil {
			return nil, fmt.Errorf("decode payload field %s: %w", name, err)
		}
	}
	return dst, nil
}
