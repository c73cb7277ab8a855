package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// DeliveryAttempt records one HTTP request of a delivery and what came back.
type DeliveryAttempt struct {
	ent.Schema
}

// Fields of the DeliveryAttempt.
func (DeliveryAttempt) Fields() []ent.Field {
	return []ent.Field{
		field.Int("delivery_id"),
		field.Int("number"),
		field.Time("requested_at"),
		field.Int("duration_ms"),
		field.JSON("request_headers", map[string]string{}),
		field.Int("response_status").Optional().Nillable(),
		field.JSON("response_headers", map[string]string{}).Optional(),
		field.Text("response_body").Optional().Nillable(),
		field.Enum("error_code").
			Values("TIMEOUT", "DNS", "CONNECTION", "TLS", "BLOCKED_TARGET", "REDIRECT", "HTTP_STATUS").
			Optional().Nillable(),
		field.String("error_message").Optional().Nillable(),
	}
}

// Edges of the DeliveryAttempt.
func (DeliveryAttempt) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("delivery", Delivery.Type).Ref("attempts").Field("delivery_id").Unique().Required(),
	}
}

// Indexes of the DeliveryAttempt.
func (DeliveryAttempt) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("delivery_id", "number"),
	}
}
