package schema

import (
	"time"

	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// OldSecret is a previous signing secret that stays valid until ExpiresAt (rotation grace period).
// Ciphertext is the AES-GCM sealed secret; the plaintext is never stored.
type OldSecret struct {
	Ciphertext []byte    `json:"ciphertext"`
	ExpiresAt  time.Time `json:"expires_at"`
}

// Webhook is an HTTP endpoint that receives the events of its types.
type Webhook struct {
	ent.Schema
}

// Fields of the Webhook.
func (Webhook) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").MaxLen(255).NotEmpty(),
		field.String("url").MaxLen(2048).NotEmpty(),
		field.JSON("event_types", []string{}),
		field.Bool("is_active").Default(true),
		field.String("description").Optional().Nillable(),
		// secret_ciphertext is the current signing secret sealed with the instance key.
		field.Bytes("secret_ciphertext").Sensitive(),
		field.JSON("old_secrets", []OldSecret{}).Optional().Sensitive(),
		field.Enum("payload_format").Values("STANDARD", "LEGACY").Default("STANDARD"),
		field.Int("timeout_seconds").Default(15),
		// custom_headers_ciphertext seals the JSON object of header values; names stay readable.
		field.Bytes("custom_headers_ciphertext").Optional().Nillable().Sensitive(),
		field.JSON("custom_header_names", []string{}).Optional(),
		field.Int("rate_limit_per_second").Optional().Nillable(),
		field.Time("created_at").Default(now).Immutable(),
		field.Time("updated_at").Default(now).UpdateDefault(now),
		field.Time("last_triggered_at").Optional().Nillable(),
		field.Int64("success_count").Default(0),
		field.Int64("failure_count").Default(0),
		// consecutive_failures counts deliveries that ended FAILED in a row; first_failure_at is
		// when the current run of failures began (the five-day rule). A success resets both.
		field.Int("consecutive_failures").Default(0),
		field.Time("first_failure_at").Optional().Nillable(),
		field.String("disabled_reason").Optional().Nillable(),
	}
}

// Edges of the Webhook.
func (Webhook) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("deliveries", Delivery.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
	}
}

// Indexes of the Webhook.
func (Webhook) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("is_active"),
		index.Fields("created_at"),
	}
}
