package httpgraphql

import "testing"

func FuzzParseBody(f *testing.F) {
	for _, s := range []string{
		`{"query":"{ __typename }"}`,
		`{"query":"{ __typename }","variables":{"a":1},"operationName":null,"extensions":{"persistedQuery":{}}}`,
		`{"extensions":{"persistedQuery":{"version":1}}}`,
		`{ "not a JSON`, `null`, `[]`, `{"query":0}`, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, perr := parseBody(body)
		if (p == nil) == (perr == nil) {
			t.Fatalf("got params %v and error %v, want exactly one", p, perr)
		}
		if perr != nil && (perr.msg == "" || perr.status != 400) {
			t.Errorf("got error %+v, want a 400 with a message", perr)
		}
	})
}
