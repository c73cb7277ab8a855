package catalog

import (
	"bytes"
	"encoding/json"
)

// kind is the JSON type of a payload field.
type kind uint8

const (
	// kindInteger is a 64-bit integer: an integral JSON number within int64.
	kindInteger kind = iota + 1
	// kindNumber is any JSON number that fits a float64.
	kindNumber
	kindString
	kindBoolean
)

// jsonType is the JSON Schema name of the kind.
func (k kind) jsonType() string {
	switch k {
	case kindInteger:
		return "integer"
	case kindNumber:
		return "number"
	case kindString:
		return "string"
	case kindBoolean:
		return "boolean"
	}
	panic("catalog: unknown kind")
}

// expected names the kind in error messages ("expected a 64-bit integer").
func (k kind) expected() string {
	switch k {
	case kindInteger:
		return "a 64-bit integer"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindBoolean:
		return "a boolean"
	}
	panic("catalog: unknown kind")
}

// formatDateTime is the JSON Schema format of RFC 3339 timestamps.
const formatDateTime = "date-time"

// formatInt64 is the schema format that tells clients an integer is 64 bits wide (OpenAPI's name,
// known to ajv-formats), so that they do not assume 32.
const formatInt64 = "int64"

// property is one payload field. Fields that are not required may also be null.
type property struct {
	name     string
	kind     kind
	required bool
	// format is formatDateTime or empty; integers always get formatInt64 in the JSON Schema.
	format string
	// enum lists the allowed values of a string field, when they are fixed.
	enum        []string
	description string
}

// schema describes one event type and its payload; the JSON Schema is derived from it and so is
// the check in Validate.
type schema struct {
	name        string
	description string
	// properties are in the order in which Validate reports problems and the schema lists them.
	properties []property
	// example is a valid payload, shown in the schema's "examples".
	example string
}

// maxProperties bounds the properties of a schema, so that Validate can track them in an array on
// the stack. A test holds the catalog to it.
const maxProperties = 16

// jsonSchemaDoc is the JSON Schema document of a payload, its keys in a fixed order.
type jsonSchemaDoc struct {
	Schema               string            `json:"$schema"`
	Title                string            `json:"title"`
	Description          string            `json:"description"`
	Type                 string            `json:"type"`
	Properties           orderedProperties `json:"properties"`
	Required             []string          `json:"required"`
	AdditionalProperties bool              `json:"additionalProperties"`
	Examples             []json.RawMessage `json:"examples"`
}

// jsonProperty is the JSON Schema of one field.
type jsonProperty struct {
	// Type is a string, or [type, "null"] for optional fields.
	Type        any    `json:"type"`
	Format      string `json:"format,omitempty"`
	Enum        []any  `json:"enum,omitempty"`
	Description string `json:"description,omitempty"`
}

// orderedProperties marshals as a JSON object whose keys keep the catalog's order; a Go map would
// sort them.
type orderedProperties []property

// MarshalJSON writes the properties as one JSON object.
func (ps orderedProperties) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, p := range ps {
		if i > 0 {
			buf.WriteByte(',')
		}
		name, err := json.Marshal(p.name)
		if err != nil {
			return nil, err
		}
		buf.Write(name)
		buf.WriteByte(':')
		value, err := json.Marshal(p.jsonSchema())
		if err != nil {
			return nil, err
		}
		buf.Write(value)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func (p property) jsonSchema() jsonProperty {
	js := jsonProperty{Type: p.kind.jsonType(), Format: p.format, Description: p.description}
	if p.kind == kindInteger {
		js.Format = formatInt64
	}
	if !p.required {
		js.Type = []string{p.kind.jsonType(), "null"}
	}
	if p.enum != nil {
		for _, v := range p.enum {
			js.Enum = append(js.Enum, v)
		}
		// In JSON Schema "enum" applies on its own, so a nullable field's enum has to admit null.
		if !p.required {
			js.Enum = append(js.Enum, nil)
		}
	}
	return js
}

// marshal returns the JSON Schema of the payload.
func (s *schema) marshal() json.RawMessage {
	doc := jsonSchemaDoc{
		Schema:               "https://json-schema.org/draft/2020-12/schema",
		Title:                s.name,
		Description:          s.description,
		Type:                 "object",
		Properties:           s.properties,
		Required:             []string{},
		AdditionalProperties: true,
		Examples:             []json.RawMessage{json.RawMessage(s.example)},
	}
	for _, p := range s.properties {
		if p.required {
			doc.Required = append(doc.Required, p.name)
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		// Only a malformed literal in the table can get here, and the tests marshal every entry.
		panic("catalog: marshal schema of " + s.name + ": " + err.Error())
	}
	return b
}
