package httpgraphql

import (
	"strings"
	"testing"
)

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name   string
		accept []string
		want   string
		wantOK bool
	}{
		{"absent", nil, mediaJSON, true},
		{"empty", []string{""}, mediaJSON, true},
		{"only garbage", []string{";;;"}, mediaJSON, true},
		{"json", []string{"application/json"}, mediaJSON, true},
		{"graphql-response", []string{"application/graphql-response+json"}, mediaGraphQLResponse, true},
		{"upper case", []string{"Application/GraphQL-Response+JSON"}, mediaGraphQLResponse, true},
		{"any", []string{"*/*"}, mediaJSON, true},
		{"bare star", []string{"*"}, mediaJSON, true},
		{"application any", []string{"application/*"}, mediaJSON, true},
		{"spec-recommended client header", []string{"application/graphql-response+json, application/json"}, mediaGraphQLResponse, true},
		{"json listed first", []string{"application/json, application/graphql-response+json"}, mediaJSON, true},
		{"split across header lines", []string{"text/html", "application/graphql-response+json"}, mediaGraphQLResponse, true},
		{"q prefers json", []string{"application/graphql-response+json;q=0.9, application/json"}, mediaJSON, true},
		{"q prefers graphql-response", []string{"application/json;q=0.5, application/graphql-response+json;q=0.6"}, mediaGraphQLResponse, true},
		{"exact beats wildcard at equal q", []string{"*/*, application/graphql-response+json"}, mediaGraphQLResponse, true},
		{"specific range sets q", []string{"application/graphql-response+json;q=0, */*"}, mediaJSON, true},
		{"wildcard with graphql-response preferred", []string{"*/*;q=0.1, application/graphql-response+json"}, mediaGraphQLResponse, true},
		{"html only", []string{"text/html"}, "", false},
		{"everything refused", []string{"application/json;q=0, application/graphql-response+json;q=0"}, "", false},
		{"bad q skipped", []string{"application/graphql-response+json;q=2, text/html"}, "", false},
		{"event stream only", []string{"text/event-stream"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := negotiate(tt.accept)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("got (%q, %v), want (%q, %v)", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestPrefersEventStream(t *testing.T) {
	tests := []struct {
		name   string
		accept []string
		want   bool
	}{
		{"absent", nil, false},
		{"json", []string{"application/json"}, false},
		{"any", []string{"*/*"}, false},
		{"event stream only", []string{"text/event-stream"}, true},
		{"event stream listed first", []string{"text/event-stream, application/json"}, true},
		{"json listed first", []string{"application/json, text/event-stream"}, false},
		{"urql query or mutation", []string{"application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"}, false},
		{"urql subscription over fetch", []string{"text/event-stream, multipart/mixed"}, true},
		{"apollo", []string{"application/graphql-response+json,application/json;q=0.9"}, false},
		{"json preferred by q", []string{"text/event-stream;q=0.5, application/json"}, false},
		{"stream preferred by q", []string{"application/json;q=0.5, text/event-stream"}, true},
		{"exact stream beats wildcard", []string{"*/*, text/event-stream"}, true},
		{"exact stream beats application/*", []string{"application/*, text/event-stream"}, true},
		{"stream refused", []string{"text/event-stream;q=0, application/json"}, false},
		{"json refused", []string{"application/json;q=0, text/event-stream"}, true},
		{"split across header lines", []string{"application/json", "text/event-stream"}, false},
		{"upper case", []string{"Text/Event-Stream"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PrefersEventStream(tt.accept); got != tt.want {
				t.Errorf("Accept %q: got %v, want %v", tt.accept, got, tt.want)
			}
		})
	}
}

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "*/*", "application/json;q=0.5, application/graphql-response+json", "text/event-stream", "a/b;q=x,,*;q=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		got, ok := negotiate([]string{accept})
		switch {
		case ok && got != mediaJSON && got != mediaGraphQLResponse:
			t.Errorf("got media %q, want one of ours", got)
		case !ok && got != "":
			t.Errorf("got media %q with ok=false, want empty", got)
		}
		if PrefersEventStream([]string{accept}) && !strings.Contains(strings.ToLower(accept), mediaEventStream) {
			t.Errorf("got a stream preferred for %q, which does not name %s", accept, mediaEventStream)
		}
	})
}
