// Package catalog is eventgate's event catalog (DESIGN.md §2): every event type it accepts, what the
// type means, and the JSON Schema of its payload. The schema shown to clients (`eventTypes`) and the
// check run at ingest (Validate) are driven by the same Go value, so they cannot drift apart.
//
// The catalog is code on purpose: adding a type is a reviewed change together with its GraphQL data
// type, not a runtime setting.
package catalog

import (
	"encoding/json"
	"strings"
)

// Event type names of the catalog.
const (
	TypeUserCreated         = "user.created"
	TypePaymentCompleted    = "payment.completed"
	TypeTransactionCreated  = "transaction.created"
	TypeTicketCreated       = "ticket.created"
	TypeTicketStatusChanged = "ticket.status_changed"
	TypeTicketMessageAdded  = "ticket.message_added"
	TypeWebhookTest         = "webhook.test"
	TypeWebhookDisabled     = "webhook.disabled"
)

// reservedPrefix marks the types only eventgate itself may emit.
const reservedPrefix = "webhook."

// Priorities of a support ticket, as producers spell them.
var priorities = []string{"low", "normal", "high", "urgent"}

// paymentProperties are shared by payment.completed and transaction.created: the producer sends the
// same transaction record for both.
var paymentProperties = []property{
	{name: "transaction_id", kind: kindInteger, required: true, description: "Transaction id."},
	{name: "user_id", kind: kindInteger, required: true, description: "The user's id."},
	{name: "type", kind: kindString, description: "Transaction type, such as deposit or subscription_payment."},
	{name: "amount_kopeks", kind: kindInteger, required: true, description: "Amount in kopeks."},
	{name: "amount_rubles", kind: kindNumber, description: "Amount in rubles."},
	{name: "payment_method", kind: kindString, description: "Payment method."},
	{name: "external_id", kind: kindString, description: "The payment provider's id."},
	{name: "is_completed", kind: kindBoolean, description: "Whether the transaction is completed."},
	{name: "description", kind: kindString, description: "Description."},
}

// table is the catalog, in the order All lists it. It is read-only: nothing writes to it after
// initialisation, and All and Lookup hand out copies.
var table = []schema{
	{
		name:        TypeUserCreated,
		description: "A user registered in the bot or the web cabinet.",
		properties: []property{
			{name: "user_id", kind: kindInteger, required: true, description: "The user's id."},
			{name: "telegram_id", kind: kindInteger, description: "The user's Telegram id."},
			{name: "username", kind: kindString, description: "Telegram username."},
			{name: "first_name", kind: kindString, description: "First name."},
			{name: "last_name", kind: kindString, description: "Last name."},
			{name: "email", kind: kindString, description: "E-mail address."},
			{name: "auth_type", kind: kindString, description: "How the user authenticated (telegram, email, …)."},
			{name: "referral_code", kind: kindString, description: "The user's own referral code."},
			{name: "referred_by_id", kind: kindInteger, description: "Id of the user who referred this one."},
		},
		example: `{"user_id":42,"telegram_id":7123456789012,"username":"ivan","first_name":"Ivan","last_name":null,"email":null,"auth_type":"telegram","referral_code":"ref_42","referred_by_id":7}`,
	},
	{
		name:        TypePaymentCompleted,
		description: "A user's payment went through.",
		properties:  paymentProperties,
		example:     `{"transaction_id":1001,"user_id":42,"type":"deposit","amount_kopeks":19900,"amount_rubles":199.0,"payment_method":"yookassa","external_id":"2c5d-77","is_completed":true,"description":"Balance top-up"}`,
	},
	{
		name:        TypeTransactionCreated,
		description: "A transaction (top-up, purchase, refund, …) was recorded on a user's balance.",
		properties:  paymentProperties,
		example:     `{"transaction_id":1002,"user_id":42,"type":"subscription_payment","amount_kopeks":-19900,"amount_rubles":-199.0,"payment_method":null,"external_id":null,"is_completed":true,"description":"Subscription for 30 days"}`,
	},
	{
		name:        TypeTicketCreated,
		description: "A user opened a support ticket.",
		properties: []property{
			{name: "ticket_id", kind: kindInteger, required: true, description: "Ticket id."},
			{name: "user_id", kind: kindInteger, required: true, description: "Author's user id."},
			{name: "title", kind: kindString, required: true, description: "Ticket title."},
			{name: "status", kind: kindString, description: "Ticket status."},
			{name: "priority", kind: kindString, enum: priorities, description: "Ticket priority."},
			{name: "has_media", kind: kindBoolean, description: "Whether the ticket has media attached."},
		},
		example: `{"ticket_id":77,"user_id":42,"title":"VPN does not connect","status":"open","priority":"high","has_media":false}`,
	},
	{
		name:        TypeTicketStatusChanged,
		description: "A support ticket moved from one status to another.",
		properties: []property{
			{name: "ticket_id", kind: kindInteger, required: true, description: "Ticket id."},
			{name: "user_id", kind: kindInteger, description: "User id of the ticket's author."},
			{name: "old_status", kind: kindString, required: true, description: "Status before the change."},
			{name: "new_status", kind: kindString, required: true, description: "Status after the change."},
			{name: "closed_at", kind: kindString, format: formatDateTime, description: "When the ticket was closed, if it was (RFC 3339)."},
		},
		example: `{"ticket_id":77,"user_id":42,"old_status":"open","new_status":"closed","closed_at":"2026-01-02T15:04:05Z"}`,
	},
	{
		name:        TypeTicketMessageAdded,
		description: "A user or an admin added a message to a support ticket.",
		properties: []property{
			{name: "ticket_id", kind: kindInteger, required: true, description: "Ticket id."},
			{name: "message_id", kind: kindInteger, required: true, description: "Message id."},
			{name: "user_id", kind: kindInteger, description: "User id of the ticket's author."},
			{name: "is_from_admin", kind: kindBoolean, required: true, description: "Whether an admin wrote the message."},
			{name: "message_text", kind: kindString, description: "Message text."},
			{name: "has_media", kind: kindBoolean, description: "Whether the message has media attached."},
			{name: "status", kind: kindString, description: "Ticket status after the message."},
		},
		example: `{"ticket_id":77,"message_id":501,"user_id":42,"is_from_admin":true,"message_text":"Please reinstall the profile.","has_media":false,"status":"answered"}`,
	},
	{
		name:        TypeWebhookTest,
		description: "A test event that eventgate sends to a single webhook when testWebhook is called.",
		properties: []property{
			{name: "webhook_id", kind: kindString, description: "The tested webhook's id."},
			{name: "message", kind: kindString, description: "A human-readable message."},
		},
		example: `{"webhook_id":"12","message":"This is a test event from eventgate."}`,
	},
	{
		name:        TypeWebhookDisabled,
		description: "eventgate disabled a webhook, because its receiver answered 410 Gone or its deliveries kept failing.",
		properties: []property{
			{name: "webhook_id", kind: kindString, description: "The disabled webhook's id."},
			{name: "reason", kind: kindString, description: "Why it was disabled."},
		},
		example: `{"webhook_id":"12","reason":"5 consecutive deliveries failed"}`,
	},
}

// Type is one event type of the catalog.
type Type struct {
	// Name is the dot-separated type name, such as "payment.completed".
	Name string
	// Description says what the event means, in one sentence.
	Description string
	// Schema is the JSON Schema (draft 2020-12) of the payload.
	Schema json.RawMessage
	// Reserved types are emitted only by eventgate itself; producers may not publish them.
	Reserved bool
}

// All returns every type of the catalog, always in the same order.
func All() []Type {
	all := make([]Type, len(table))
	for i := range table {
		all[i] = table[i].public()
	}
	return all
}

// Lookup returns the type called name, if the catalog has it.
func Lookup(name string) (Type, bool) {
	s := find(name)
	if s == nil {
		return Type{}, false
	}
	return s.public(), true
}

// IsReserved reports whether name is reserved for events that eventgate emits itself. It holds for
// names that are not (yet) in the catalog too, so producers cannot claim the prefix.
func IsReserved(name string) bool {
	return strings.HasPrefix(name, reservedPrefix)
}

// find returns the schema of the type called name, or nil. A linear scan over a handful of entries
// is faster than a map here and keeps Validate free of allocations.
func find(name string) *schema {
	for i := range table {
		if table[i].name == name {
			return &table[i]
		}
	}
	return nil
}

func (s *schema) public() Type {
	return Type{
		Name:        s.name,
		Description: s.description,
		Schema:      s.marshal(),
		Reserved:    IsReserved(s.name),
	}
}
