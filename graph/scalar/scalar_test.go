package scalar

import (
	"bytes"
	"testing"
	"time"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, seq := range []int64{0, 1, 255, 1 << 40, 1 << 62} {
		got, err := CursorFor(seq).Position()
		if err != nil || got != seq {
			t.Errorf("CursorFor(%d).Position() = %d, %v", seq, got, err)
		}
	}
	for _, bad := range []string{"", "garbage", "AQ", "AgAAAAAAAAAB", "AQAAAAAAAAAB==", "_____________"} {
		if _, err := Cursor(bad).Position(); err == nil {
			t.Errorf("Cursor(%q) decoded, want an error", bad)
		}
		var c Cursor
		if err := c.UnmarshalGQL(bad); err == nil {
			t.Errorf("UnmarshalGQL(%q) accepted", bad)
		}
	}
}

func FuzzCursor(f *testing.F) {
	f.Add(string(CursorFor(42)))
	f.Add("AQAAAAAAAAAB")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		seq, err := Cursor(s).Position()
		if err != nil {
			return
		}
		if seq < 0 {
			t.Fatalf("decoded negative position %d from %q", seq, s)
		}
		if again := CursorFor(seq); again != Cursor(s) {
			t.Fatalf("%q decodes to %d which encodes as %q: cursors must be canonical", s, seq, again)
		}
	})
}

func TestTimeIsUTC(t *testing.T) {
	loc := time.FixedZone("MSK", 3*3600)
	var buf bytes.Buffer
	MarshalTime(time.Date(2026, 1, 2, 15, 4, 5, 0, loc)).MarshalGQL(&buf)
	if got := buf.String(); got != `"2026-01-02T12:04:05Z"` {
		t.Fatalf("got %s, want UTC", got)
	}
	if _, err := UnmarshalTime("yesterday"); err == nil {
		t.Fatal("accepted a non-RFC 3339 time")
	}
}

func TestJSONIsWrittenCompact(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"compact", `{"a":[1,"x y"]}`, `{"a":[1,"x y"]}`},
		{"indented", "{\n  \"a\": [1, \"x y\"]\n}", `{"a":[1,"x y"]}`},
		{"nil", "", "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			MarshalJSON([]byte(tt.in)).MarshalGQL(&b)
			if b.String() != tt.want {
				t.Errorf("got %s, want %s", b.String(), tt.want)
			}
		})
	}
}
