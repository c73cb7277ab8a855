package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// Delivery is one event on its way to one webhook (the outbox row written with the event).
type Delivery struct {
	ent.Schema
}

// Fields of the Delivery.
func (Delivery) Fields() []ent.Field {
	return []ent.Field{
		field.Int("webhook_id"),
		field.Int("event_id"),
		field.String("event_type"),
		field.Enum("status").Values("PENDING", "SUCCESS", "FAILED").Default("PENDING"),
		field.Int("attempt_count").Default(0),
		// Set exactly while PENDING: when the next attempt is due.
		field.Time("next_attempt_at").Optional().Nillable(),
		field.Int("response_status").Optional().Nillable(),
		field.String("error_message").Optional().Nillable(),
		field.Time("created_at").Default(now).Immutable(),
		field.Time("delivered_at").Optional().Nillable(),
		// A claim is a lease: a worker owns the delivery until claimed_until; a crashed worker's
		// claims are taken over once it passes.
		field.Time("claimed_until").Optional().Nillable(),
		field.String("claimed_by").Optional().Nillable(),
	}
}

// Edges of the Delivery.
func (Delivery) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("webhook", Webhook.Type).Ref("deliveries").Field("webhook_id").Unique().Required(),
		edge.From("event", Event.Type).Ref("deliveries").Field("event_id").Unique().Required(),
		edge.To("attempts", DeliveryAttempt.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
	}
}

// Indexes of the Delivery.
func (Delivery) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("status", "next_attempt_at"),
		// The dispatcher refills one webhook's lane in due order. Partial, so that it holds only
		// the deliveries with an attempt to make (next_attempt_at is set exactly while PENDING)
		// and stays as small as the backlog.
		index.Fields("webhook_id", "next_attempt_at").
			Annotations(entsql.IndexWhere("next_attempt_at IS NOT NULL")).
			StorageKey("delivery_due_webhook_id_next_attempt_at"),
		index.Fields("webhook_id", "created_at"),
		index.Fields("event_id"),
		index.Fields("created_at"),
	}
}
