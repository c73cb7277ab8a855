package dispatch

import (
	"encoding/json"
	"testing"
)

func TestEncodeHeadersMatchesEncodingJSON(t *testing.T) {
	maps := []map[string]string{
		{},
		{"Content-Type": "application/json", "X-Webhook-Attempt": "1", "webhook-id": "evt_1"},
		{"quote": `say "hi"`, "backslash": `a\b`, "html": "<a href='x'>&amp;</a>"},
		{"controls": "a\x00b\x01\x1f\n\r\t\x7f", "unicode": "héllo ✓ 日本 😀", "seps": "a\u2028b\u2029c"},
		{"invalid": "a\xffb\xc3", "truncated": "\xe2\x82", "empty": ""},
	}
	for _, m := range maps {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeHeaders(pairs(m)); string(got) != string(want) {
			t.Errorf("encodeHeaders(%q)\n got %s\nwant %s", m, got, want)
		}
	}
}

// pairs lists a map's entries, in no order.
func pairs(m map[string]string) []headerPair {
	var out []headerPair
	for k, v := range m {
		out = append(out, headerPair{k, v})
	}
	return out
}

func FuzzEncodeHeaders(f *testing.F) {
	f.Add("X-Name", "value")
	f.Add("a\xff", "<\u2028>\x00")
	f.Fuzz(func(t *testing.T, k, v string) {
		m := map[string]string{k: v, "k2": v + k}
		want, _ := json.Marshal(m)
		if got := encodeHeaders(pairs(m)); string(got) != string(want) {
			t.Errorf("encodeHeaders(%q)\n got %s\nwant %s", m, got, want)
		}
	})
}
