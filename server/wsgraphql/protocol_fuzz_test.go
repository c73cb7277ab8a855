package wsgraphql

import (
	"testing"
)

// FuzzParseMessage feeds client messages to the parsers: they must never panic, and whatever
// they accept must satisfy the protocol's shape.
func FuzzParseMessage(f *testing.F) {
	for _, seed := range []string{
		`{"type":"connection_init","payload":{"Authorization":"Bearer x"}}`,
		`{"id":"1","type":"subscribe","payload":{"query":"subscription { events { id } }","variables":{"a":1e400}}}`,
		`{"id":"1","type":"complete"}`,
		`{"type":"ping","payload":null}`,
		`{"id":1,"type":"subscribe"}`,
		`{"type":"start","id":"","payload":[]}`,
		`[]`, `null`, `{"type":""}`, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseMessage(data)
		if err != nil {
			return
		}
		if m.Type == "" {
			t.Fatalf("accepted %q without a type", data)
		}
		if id, err := m.id(); err == nil && id == "" {
			t.Fatalf("accepted an empty id in %q", data)
		}
		if _, err := m.objectPayload(); err == nil && !isNull(m.Payload) && m.Payload[0] != '{' {
			t.Fatalf("accepted a non-object payload in %q", data)
		}
		if p, err := m.operationPayload(); err == nil && p == nil {
			t.Fatalf("accepted an operation payload without params in %q", data)
		}
	})
}
