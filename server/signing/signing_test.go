package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// whsec returns "whsec_" + base64 of n bytes that are not all equal, so keys differ by length.
func whsec(n int) string {
	key := make([]byte, n)
	for i := range key {
		key[i] = byte(i*7 + 1)
	}
	return Prefix + base64.StdEncoding.EncodeToString(key)
}

// verifier builds the official Standard Webhooks verifier for secret, in the mode a receiver
// would choose: whsec_ secrets as given, any other secret as a raw secret.
func verifier(t *testing.T, secret string) *standardwebhooks.Webhook {
	t.Helper()
	var (
		wh  *standardwebhooks.Webhook
		err error
	)
	if strings.HasPrefix(secret, Prefix) {
		wh, err = standardwebhooks.NewWebhook(secret)
	} else {
		wh, err = standardwebhooks.NewWebhookRaw([]byte(secret))
	}
	if err != nil {
		t.Fatalf("standardwebhooks verifier: %v", err)
	}
	return wh
}

func headers(msgID string, ts int64, signature string) http.Header {
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, msgID)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, signature)
	return h
}

func TestGenerateSecret(t *testing.T) {
	a, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two generated secrets are equal: %q", a)
	}
	if err := ValidateSecret(a); err != nil {
		t.Fatalf("generated secret does not validate: %v", err)
	}
	if got, want := len(Key(a)), 32; got != want {
		t.Fatalf("got key of %d bytes, want %d", got, want)
	}
	if !strings.HasPrefix(a, Prefix) {
		t.Fatalf("got %q, want prefix %q", a, Prefix)
	}
	// The official library must accept it as a whsec_ secret.
	verifier(t, a)
}

func TestValidateSecret(t *testing.T) {
	tests := []struct {
		name    string
		secret  string
		wantErr string // substring of the error; "" = valid
	}{
		{"empty", "", "must not be empty"},
		{"too short raw", "short-secret", "16 to 128 characters"},
		{"whsec 23 bytes", whsec(23), "24 to 64 bytes, got 23"},
		{"whsec 24 bytes", whsec(24), ""},
		{"whsec 32 bytes", whsec(32), ""},
		{"whsec 64 bytes", whsec(64), ""},
		{"whsec 65 bytes", whsec(65), "24 to 64 bytes, got 65"},
		{"whsec empty", Prefix, "24 to 64 bytes, got 0"},
		{"whsec bad base64", Prefix + "not*base64*at*all*not*base64*at*all", "standard base64"},
		{"whsec url-safe alphabet", Prefix + strings.Repeat("-_", 16), "standard base64"},
		{"whsec unpadded", strings.TrimRight(whsec(25), "="), "standard base64"},
		{"whsec line break", whsec(24)[:20] + "\n" + whsec(24)[20:], "standard base64"},
		{"whsec non-canonical padding bits", Prefix + strings.Repeat("A", 32) + "AB==", "standard base64"},
		{"raw 15 chars", strings.Repeat("a", 15), "16 to 128 characters, got 15"},
		{"raw 16 chars", strings.Repeat("a", 16), ""},
		{"raw 128 chars", strings.Repeat("a", 128), ""},
		{"raw 129 chars", strings.Repeat("a", 129), "16 to 128 characters, got 129"},
		{"raw all printable", "!\"#$%&'()*+,-./0123456789:;<=>?@AZ[\\]^_`az{|}~", ""},
		{"raw inner space", "my old webhook secret", ""},
		{"raw leading space", " my-old-webhook-secret", "start or end with a space"},
		{"raw trailing space", "my-old-webhook-secret ", "start or end with a space"},
		{"raw tab", "my-old-webhook\tsecret", "printable ASCII characters, found another at position 15"},
		{"raw newline", "my-old-webhook-secret\n", "printable ASCII"},
		{"raw NUL", "my-old-webhook-secret\x00", "printable ASCII"},
		{"raw DEL", "my-old-webhook-secret\x7f", "printable ASCII"},
		{"raw non-ASCII", "my-old-webhook-sécret", "printable ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSecret(tt.secret)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got error %q, want valid", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("got valid, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("got error %q, want it to contain %q", err, tt.wantErr)
			}
			if err != nil && len(tt.secret) >= 8 && strings.Contains(err.Error(), tt.secret) {
				t.Fatalf("error %q repeats the secret", err)
			}
		})
	}
}

func TestKey(t *testing.T) {
	raw := "my-old-webhook-secret"
	if got := string(Key(raw)); got != raw {
		t.Fatalf("got key %q, want the raw bytes %q", got, raw)
	}
	want := []byte("0123456789abcdefghijklmnopqrstuv")
	secret := Prefix + base64.StdEncoding.EncodeToString(want)
	if got := Key(secret); string(got) != string(want) {
		t.Fatalf("got key %q, want %q", got, want)
	}
}

func TestSignVerifiesWithStandardWebhooks(t *testing.T) {
	body := []byte(`{"type":"payment.completed","timestamp":"2024-05-01T10:00:00Z","data":{"amount_kopeks":19900}}`)
	msgID := "evt_2fKx9"
	ts := time.Now().Unix()
	tests := []struct {
		name   string
		secret string
	}{
		{"whsec secret", whsec(32)},
		{"whsec 24-byte secret", whsec(24)},
		{"raw secret", "legacy-secret-from-the-old-bot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := Sign([]string{tt.secret}, msgID, ts, body)
			if !strings.HasPrefix(sig, "v1,") || strings.Contains(sig, " ") {
				t.Fatalf("got signature %q, want one v1 signature", sig)
			}
			wh := verifier(t, tt.secret)
			if err := wh.Verify(body, headers(msgID, ts, sig)); err != nil {
				t.Fatalf("got %v, want the signature to verify", err)
			}
			tampered := append([]byte(nil), body...)
			tampered[len(tampered)-3]++
			err := wh.Verify(tampered, headers(msgID, ts, sig))
			if !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
				t.Fatalf("tampered body: got %v, want %v", err, standardwebhooks.ErrNoMatchingSignature)
			}
			if err := wh.Verify(body, headers(msgID+"x", ts, sig)); err == nil {
				t.Fatalf("other message id: got verified, want failure")
			}
			if err := wh.Verify(body, headers(msgID, ts+1, sig)); err == nil {
				t.Fatalf("other timestamp: got verified, want failure")
			}
		})
	}
}

func TestSignSeveralSecrets(t *testing.T) {
	body := []byte(`{"type":"user.registered","data":{}}`)
	msgID := "evt_rotation"
	ts := time.Now().Unix()
	secrets := []string{whsec(32), "legacy-secret-from-the-old-bot", whsec(48)}

	sig := NewSigner(secrets).Sign(msgID, ts, body)
	parts := strings.Split(sig, " ")
	if got, want := len(parts), len(secrets); got != want {
		t.Fatalf("got %d signatures in %q, want %d", got, sig, want)
	}
	for i, secret := range secrets {
		// Order: newest first, as given.
		if got, want := parts[i], Sign([]string{secret}, msgID, ts, body); got != want {
			t.Fatalf("signature %d: got %q, want %q", i, got, want)
		}
		wh := verifier(t, secret)
		if err := wh.Verify(body, headers(msgID, ts, sig)); err != nil {
			t.Fatalf("secret %d: got %v, want the header to verify", i, err)
		}
		if err := wh.Verify(append(body, ' '), headers(msgID, ts, sig)); err == nil {
			t.Fatalf("secret %d: tampered body verified, want failure", i)
		}
	}
	// A secret that is not in the header must not verify.
	if err := verifier(t, whsec(33)).Verify(body, headers(msgID, ts, sig)); err == nil {
		t.Fatalf("unrelated secret: got verified, want failure")
	}
	if got := Sign(nil, msgID, ts, body); got != "" {
		t.Fatalf("no secrets: got %q, want empty", got)
	}
}

func TestSignLegacy(t *testing.T) {
	body := []byte(`{"amount_kopeks":19900}`)
	for _, secret := range []string{whsec(32), "legacy-secret-from-the-old-bot"} {
		t.Run(secret[:6], func(t *testing.T) {
			// Independent computation: the key is the whole string, whsec_ prefix included.
			mac := hmac.New(sha256.New, []byte(secret))
			mac.Write(body)
			want := "sha256=" + hex.EncodeToString(mac.Sum(nil))

			if got := SignLegacy(secret, body); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
			// The Signer uses the newest secret only.
			if got := NewSigner([]string{secret, whsec(40)}).SignLegacy(body); got != want {
				t.Fatalf("signer: got %q, want %q", got, want)
			}
			if got := SignLegacy(secret, append(body, ' ')); got == want {
				t.Fatalf("tampered body gave the same signature %q", got)
			}
		})
	}
	if got := NewSigner(nil).SignLegacy(body); got != "" {
		t.Fatalf("no secrets: got %q, want empty", got)
	}
}

// The published Standard Webhooks example (also in Svix's documentation) pins the exact
// output, so our signer and the library cannot drift together unnoticed.
func TestSignKnownAnswer(t *testing.T) {
	secret := Prefix + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"test": 2432232314}`)
	want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got := Sign([]string{secret}, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestSignerReusedConcurrently signs different messages many times, from several goroutines,
// with one Signer (whose keyed HMACs are pooled), and checks every signature against a fresh
// one: no state may leak from one signature into the next.
func TestSignerReusedConcurrently(t *testing.T) {
	secrets := []string{whsec(32), whsec(24)}
	s := NewSigner(secrets)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				id, body := fmt.Sprintf("evt_%d_%d", g, i), []byte(strings.Repeat("y", i))
				if got, want := s.Sign(id, int64(i), body), Sign(secrets, id, int64(i), body); got != want {
					t.Errorf("reused signer: got %q, want %q", got, want)
					return
				}
				if got, want := s.SignLegacy(body), SignLegacy(secrets[0], body); got != want {
					t.Errorf("reused signer, legacy: got %q, want %q", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkSign(b *testing.B) {
	body := []byte(strings.Repeat("x", 1024))
	for _, n := range []int{1, 3} {
		secrets := make([]string, n)
		for i := range secrets {
			secrets[i] = whsec(32 + i)
		}
		b.Run(strconv.Itoa(n)+"secrets", func(b *testing.B) {
			s := NewSigner(secrets)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				s.Sign("evt_2fKx9", 1714557600, body)
			}
		})
	}
}
