package secretbox

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	key, err := LoadOrCreateKeyFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	box, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0")
	sealed, err := box.Seal(secret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatalf("sealed value contains the plaintext")
	}
	got, err := box.Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatalf("got %q, want %q", got, secret)
	}
	other, _ := New(bytes.Repeat([]byte{7}, KeySize))
	if _, err := other.Open(sealed); err == nil {
		t.Fatalf("opening with another key succeeded")
	}
	if other.Fingerprint() == box.Fingerprint() {
		t.Fatalf("two keys share a fingerprint")
	}
}

func TestKeyFileIsPrivateAndStable(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadOrCreateKeyFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Fatalf("key file mode %o, want 600", mode)
	}
	second, err := LoadOrCreateKeyFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("key changed between loads")
	}
}

func TestParseKeyRejectsWrongLength(t *testing.T) {
	for _, in := range []string{"", "not base64!!", "c2hvcnQ="} {
		if _, err := ParseKey(in); err == nil {
			t.Errorf("ParseKey(%q) succeeded, want an error", in)
		}
	}
}
