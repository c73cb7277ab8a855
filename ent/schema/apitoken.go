package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
)

// ApiToken is a bearer credential. Only the SHA-256 of the secret is stored.
type ApiToken struct {
	ent.Schema
}

// Fields of the ApiToken.
func (ApiToken) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").MaxLen(255).NotEmpty(),
		field.String("prefix"),
		field.String("token_hash").Unique().Immutable().Sensitive(),
		field.JSON("scopes", []string{}),
		// event_types null means every type.
		field.JSON("event_types", []string{}).Optional(),
		field.Time("created_at").Default(now).Immutable(),
		field.Time("last_used_at").Optional().Nillable(),
		field.Time("expires_at").Optional().Nillable(),
		field.Time("revoked_at").Optional().Nillable(),
	}
}
