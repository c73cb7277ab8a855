package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/big"
	"slices"
	"time"
)

// This file is a second, deliberately plain validator that reads the published JSON Schema (the
// JSON, not the Go value behind it) and checks a payload with encoding/json. Validate must agree
// with it, which is what keeps the schema shown to clients and the check at ingest the same.

// errUndecided marks inputs the reference cannot judge exactly (such as numbers too long for its
// arithmetic); the comparison skips them.
var errUndecided = errors.New("reference cannot decide")

// objectKeys returns the keys of a JSON object in document order, repeats included.
func objectKeys(raw []byte) ([]string, error) {
	var keys []string
	err := walkObject(raw, func(key string, _ json.RawMessage) { keys = append(keys, key) })
	return keys, err
}

// walkObject calls fn for every member of the JSON object raw, in order, and fails unless raw is
// exactly one JSON object.
func walkObject(raw []byte, fn func(key string, value json.RawMessage)) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return errors.New("not an object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return err
		}
		fn(tok.(string), value)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the object")
	}
	return nil
}

type refProperty struct {
	name     string
	types    []string
	format   string
	enum     []any
	required bool
}

// refSchema reads a published schema.
func refSchema(raw json.RawMessage) ([]refProperty, error) {
	var doc struct {
		Properties map[string]struct {
			Type   any    `json:"type"`
			Format string `json:"format"`
			Enum   []any  `json:"enum"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	var dp struct {
		Properties json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(raw, &dp); err != nil {
		return nil, err
	}
	order, err := objectKeys(dp.Properties)
	if err != nil {
		return nil, err
	}
	var props []refProperty
	for _, name := range order {
		p := doc.Properties[name]
		rp := refProperty{name: name, format: p.Format, enum: p.Enum, required: slices.Contains(doc.Required, name)}
		switch typ := p.Type.(type) {
		case string:
			rp.types = []string{typ}
		case []any:
			for _, s := range typ {
				rp.types = append(rp.types, s.(string))
			}
		}
		props = append(props, rp)
	}
	return props, nil
}

// refValidate returns the fields (schema order) that the published schema refuses in payload,
// errNotObject-like errors for a payload that is not one JSON object, or errUndecided.
func refValidate(schemaJSON json.RawMessage, payload []byte) (bad []string, err error) {
	props, err := refSchema(schemaJSON)
	if err != nil {
		return nil, err
	}
	problems := map[string]bool{}
	seen := map[string]bool{}
	undecided := false
	err = walkObject(payload, func(key string, value json.RawMessage) {
		for _, p := range props {
			if p.name != key {
				continue
			}
			seen[key] = true
			ok, decided := refCheck(p, bytes.TrimSpace(value))
			if !decided {
				undecided = true
			}
			if !ok {
				problems[key] = true
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if undecided {
		return nil, errUndecided
	}
	for _, p := range props {
		if problems[p.name] || p.required && !seen[p.name] {
			bad = append(bad, p.name)
		}
	}
	return bad, nil
}

// refCheck applies one property's schema to a value: "type", then "format", then "enum".
func refCheck(p refProperty, raw json.RawMessage) (ok, decided bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return false, true
	}
	typeOK := false
	for _, typ := range p.types {
		switch typ {
		case "null":
			typeOK = typeOK || v == nil
		case "boolean":
			_, is := v.(bool)
			typeOK = typeOK || is
		case "string":
			_, is := v.(string)
			typeOK = typeOK || is
		case "number":
			if n, is := v.(json.Number); is {
				// A number must be one a reader can hold in a float64.
				_, err := n.Float64()
				typeOK = typeOK || err == nil
			}
		case "integer":
			if n, is := v.(json.Number); is {
				if len(n) > 60 {
					return false, false
				}
				f, _, err := big.ParseFloat(string(n), 10, 1000, big.ToNearestEven)
				if err != nil {
					return false, false
				}
				if f.IsInt() {
					i, acc := f.Int64()
					typeOK = typeOK || acc == big.Exact && i >= math.MinInt64
				}
			}
		}
	}
	if !typeOK {
		return false, true
	}
	if _, is := v.(string); is && p.format == "date-time" {
		// A date-time is what time.Time's JSON decoding accepts, since that is how it is read.
		var t time.Time
		if t.UnmarshalJSON(bytes.TrimSpace(raw)) != nil {
			return false, true
		}
	}
	if _, is := v.(string); is && p.enum != nil && !slices.Contains(p.enum, v) {
		return false, true
	}
	return true, true
}
