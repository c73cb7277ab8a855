package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/dialect/entsql"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"
)

// Event is one entry of the durable log. Its numeric id is the log position behind the cursor;
// event_id is the public id (the producer's idempotency key when given).
type Event struct {
	ent.Schema
}

// Fields of the Event.
func (Event) Fields() []ent.Field {
	return []ent.Field{
		field.String("event_id").MaxLen(128).NotEmpty().Unique().Immutable(),
		field.String("type").Immutable(),
		// payload is the producer's JSON object exactly as accepted (unknown keys kept).
		field.Bytes("payload").Immutable(),
		// payload_hash is the SHA-256 of the canonical payload, to tell an idempotent retry from a
		// conflicting reuse of the same id.
		field.String("payload_hash").Immutable(),
		field.Time("occurred_at").Immutable(),
		field.Time("received_at").Default(now).Immutable(),
	}
}

// Edges of the Event.
func (Event) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("deliveries", Delivery.Type).Annotations(entsql.OnDelete(entsql.Cascade)),
	}
}

// Indexes of the Event.
func (Event) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("type"),
		index.Fields("occurred_at"),
		index.Fields("received_at"),
	}
}
