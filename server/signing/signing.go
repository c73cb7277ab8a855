// Package signing makes and checks webhook secrets and computes the signatures that every
// webhook request carries (DESIGN.md §6): the Standard Webhooks `webhook-signature` header,
// one "v1," signature per valid secret during a rotation grace period, and the
// `X-Webhook-Signature` header that receivers of the old system verify.
//
// Two secret forms exist. "whsec_" + standard base64 is the Standard Webhooks form: the HMAC
// key is the decoded bytes. Any other secret (kept for receivers of the old system) is used as
// raw bytes, which Standard Webhooks libraries call "raw secret" mode.
package signing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// Prefix marks a secret in the Standard Webhooks form.
const Prefix = "whsec_"

// Limits on secrets a user may supply (DESIGN.md §3, createWebhook).
const (
	// MinKeyBytes and MaxKeyBytes bound the decoded key of a "whsec_" secret.
	MinKeyBytes = 24
	MaxKeyBytes = 64
	// MinRawLen and MaxRawLen bound the length of a secret without the "whsec_" prefix.
	MinRawLen = 16
	MaxRawLen = 128
)

// generatedKeyBytes is the entropy of a generated secret: 256 bits, the HMAC-SHA256 block
// size halved, which is what Standard Webhooks recommends.
const generatedKeyBytes = 32

// GenerateSecret returns a new secret: "whsec_" + standard base64 of 32 random bytes.
func GenerateSecret() (string, error) {
	key := make([]byte, generatedKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate webhook secret: %w", err)
	}
	return Prefix + base64.StdEncoding.EncodeToString(key), nil
}

// ValidateSecret reports whether s may be used as a webhook secret. Valid are "whsec_"
// followed by canonical, padded standard base64 of 24 to 64 bytes, and 16 to 128 printable
// ASCII characters (space included, but not at either end) that do not start with "whsec_".
// The error names the broken rule and never repeats the secret; the caller adds the field.
func ValidateSecret(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if rest, ok := strings.CutPrefix(s, Prefix); ok {
		key, ok := decodeKey(rest)
		if !ok {
			return errors.New(`must be "whsec_" followed by standard base64 with padding (alphabet A-Z a-z 0-9 + /)`)
		}
		if len(key) < MinKeyBytes || len(key) > MaxKeyBytes {
			return fmt.Errorf(`a "whsec_" secret must encode %d to %d bytes, got %d`, MinKeyBytes, MaxKeyBytes, len(key))
		}
		return nil
	}
	if len(s) < MinRawLen || len(s) > MaxRawLen {
		return fmt.Errorf(`must be %d to %d characters, got %d (or "whsec_" + base64 of %d to %d bytes)`,
			MinRawLen, MaxRawLen, len(s), MinKeyBytes, MaxKeyBytes)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("must contain only printable ASCII characters, found another at position %d", i+1)
		}
	}
	// A leading or trailing space is almost always a copy-paste accident, and forms and
	// configuration files trim it silently, so the receiver would end up with another key.
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return errors.New("must not start or end with a space")
	}
	return nil
}

// decodeKey decodes the base64 part of a "whsec_" secret. It accepts only the canonical
// encoding: base64.StdEncoding alone skips line breaks and ignores non-zero padding bits, and
// a receiver's library that decodes differently would then get another key.
func decodeKey(s string) ([]byte, bool) {
	key, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(key) != s {
		return nil, false
	}
	return key, true
}

// Key returns the HMAC key of secret: the base64-decoded part after "whsec_", or the raw bytes
// of a secret without that prefix. Secrets are validated before they are stored; should an
// invalid "whsec_" secret reach Key anyway, its raw bytes are used rather than panicking.
func Key(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, Prefix); ok {
		if key, ok := decodeKey(rest); ok {
			return key
		}
	}
	return []byte(secret)
}

// Signer signs requests for one webhook with its current secrets. It derives the keys once, so
// a dispatcher can build it when it loads the webhook and reuse it for every attempt. A Signer
// is safe for concurrent use.
type Signer struct {
	keys   [][]byte // Standard Webhooks keys, newest first
	legacy []byte   // key of the old-system signature: the whole newest secret string
	// macs pools keyed HMACs: one pool per key of keys, then one for legacy (see mac).
	macs []sync.Pool
}

// NewSigner makes a Signer for secrets, newest first. The newest secret also keys the legacy
// signature (DESIGN.md §3, rotateWebhookSecret).
func NewSigner(secrets []string) *Signer {
	s := &Signer{keys: make([][]byte, len(secrets)), macs: make([]sync.Pool, len(secrets)+1)}
	for i, secret := range secrets {
		s.keys[i] = Key(secret)
	}
	if len(secrets) > 0 {
		s.legacy = []byte(secrets[0])
	}
	return s
}

// sigLen is the length of one "v1,<base64 HMAC-SHA256>" signature: 3 + 44.
const sigLen = len("v1,") + (sha256.Size+2)/3*4

// Sign returns the `webhook-signature` header value for a message: "v1,<base64 signature>" per
// secret, space-separated, in the Signer's order. The signed content is
// msgID + "." + timestamp (unix seconds) + "." + body. With no secrets it returns "".
func (s *Signer) Sign(msgID string, timestamp int64, body []byte) string {
	if len(s.keys) == 0 {
		return ""
	}
	// The signed prefix is the same for every key; build it once.
	prefix := make([]byte, 0, len(msgID)+2+20)
	prefix = append(prefix, msgID...)
	prefix = append(prefix, '.')
	prefix = strconv.AppendInt(prefix, timestamp, 10)
	prefix = append(prefix, '.')

	out := make([]byte, 0, len(s.keys)*(sigLen+1))
	var sum [sha256.Size]byte
	for i := range s.keys {
		mac := s.mac(i)
		mac.Write(prefix)
		mac.Write(body)
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, "v1,"...)
		out = base64.StdEncoding.AppendEncode(out, mac.Sum(sum[:0]))
		s.macs[i].Put(mac)
	}
	return string(out)
}

// SignLegacy returns the `X-Webhook-Signature` header value for body: "sha256=" + hex
// HMAC-SHA256 keyed with the UTF-8 bytes of the whole newest secret, "whsec_" included, as the
// old system did. With no secrets it returns "".
func (s *Signer) SignLegacy(body []byte) string {
	if s.legacy == nil {
		return ""
	}
	mac := s.mac(len(s.keys))
	defer s.macs[len(s.keys)].Put(mac)
	return legacy(mac, body)
}

// mac returns a keyed HMAC-SHA256, reset, for key i of s.keys (len(s.keys): the legacy key).
// Keyed states are pooled: keying one costs two SHA-256 blocks and four allocations per
// signature otherwise.
func (s *Signer) mac(i int) hash.Hash {
	if m, ok := s.macs[i].Get().(hash.Hash); ok {
		m.Reset()
		return m
	}
	key := s.legacy
	if i < len(s.keys) {
		key = s.keys[i]
	}
	return hmac.New(sha256.New, key)
}

// Sign returns the `webhook-signature` header value for secrets (newest first); see
// Signer.Sign. Use a Signer to sign many messages with the same secrets.
func Sign(secrets []string, msgID string, timestamp int64, body []byte) string {
	return NewSigner(secrets).Sign(msgID, timestamp, body)
}

// SignLegacy returns the `X-Webhook-Signature` header value for body signed with secret: see
// Signer.SignLegacy.
func SignLegacy(secret string, body []byte) string {
	return legacy(hmac.New(sha256.New, []byte(secret)), body)
}

func legacy(mac hash.Hash, body []byte) string {
	mac.Write(body)
	var sum [sha256.Size]byte
	out := make([]byte, 0, len("sha256=")+hex.EncodedLen(sha256.Size))
	out = append(out, "sha256="...)
	return string(hex.AppendEncode(out, mac.Sum(sum[:0])))
}
