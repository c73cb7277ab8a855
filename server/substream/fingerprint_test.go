package substream

import (
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

var fingerprintSchema = gqlparser.MustLoadSchema(&ast.Source{Input: `
type Query { x: Int }
type Subscription { events(after: String, types: [String!]): Event! }
type Event { id: ID! payload(pretty: Boolean): String, type: String }
`})

func opFor(t *testing.T, query string, vars map[string]any) *graphql.OperationContext {
	t.Helper()
	doc, errs := gqlparser.LoadQuery(fingerprintSchema, query)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return &graphql.OperationContext{RawQuery: query, Doc: doc, Operation: doc.Operations[0], Variables: vars}
}

func TestFingerprintIgnoresRootArgumentsOnly(t *testing.T) {
	q := `subscription($after: String, $p: Boolean, $inc: Boolean!) { events(after: $after) { id payload(pretty: $p) type @include(if: $inc) } }`
	base := Fingerprint(opFor(t, q, map[string]any{"after": "a", "p": true, "inc": true}))
	if got := Fingerprint(opFor(t, q, map[string]any{"after": "b", "p": true, "inc": true})); got != base {
		t.Error("a different root argument changed the fingerprint: subscribers would not share")
	}
	if got := Fingerprint(opFor(t, q, map[string]any{"after": "a", "p": false, "inc": true})); got == base {
		t.Error("a different nested argument kept the fingerprint: renderings would be wrong")
	}
	if got := Fingerprint(opFor(t, q, map[string]any{"after": "a", "p": true, "inc": false})); got == base {
		t.Error("a different @include variable kept the fingerprint: renderings would be wrong")
	}
	other := `subscription($after: String, $p: Boolean, $inc: Boolean!) { events(after: $after) { id type @include(if: $inc) payload(pretty: $p) } }`
	if got := Fingerprint(opFor(t, other, map[string]any{"after": "a", "p": true, "inc": true})); got == base {
		t.Error("another selection kept the fingerprint")
	}
}
