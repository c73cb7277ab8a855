// Package auth authenticates bearer tokens and carries the caller's identity and scopes in the
// request context. Token secrets are random, shown once, and stored only as a SHA-256 hash.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/apitoken"
	"github.com/eventgate/eventgate/server/apperr"
)

// Scopes of the contract (DESIGN.md §4).
const (
	ScopeWebhooksRead    = "WEBHOOKS_READ"
	ScopeWebhooksWrite   = "WEBHOOKS_WRITE"
	ScopeEventsPublish   = "EVENTS_PUBLISH"
	ScopeEventsSubscribe = "EVENTS_SUBSCRIBE"
	ScopeAdmin           = "ADMIN"
)

// secretPrefix starts every generated token; prefixLen characters of a secret are kept readable.
const (
	secretPrefix = "egt_"
	secretChars  = 43
	prefixLen    = 12
	// lastUsedEvery bounds how often last_used_at is written for one token.
	lastUsedEvery = time.Minute
	// cacheTTL bounds how long a verified token is trusted without asking the database again;
	// revocation therefore reaches new requests within this time.
	cacheTTL = 2 * time.Second
)

// Principal is the authenticated caller.
type Principal struct {
	TokenID int
	Name    string
	Scopes  []string
	// EventTypes limits the event types the caller may see; nil means all.
	EventTypes []string
	ExpiresAt  *time.Time
}

// Has reports whether the principal holds scope (ADMIN implies all; WEBHOOKS_WRITE implies WEBHOOKS_READ).
func (p *Principal) Has(scope string) bool {
	for _, s := range p.Scopes {
		if s == scope || s == ScopeAdmin || (s == ScopeWebhooksWrite && scope == ScopeWebhooksRead) {
			return true
		}
	}
	return false
}

// CanSee reports whether the principal may see events of eventType.
func (p *Principal) CanSee(eventType string) bool {
	return p.EventTypes == nil || slices.Contains(p.EventTypes, eventType)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of ctx.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// Require returns the principal of ctx if it holds scope, else an UNAUTHENTICATED or FORBIDDEN error.
func Require(ctx context.Context, scope string) (*Principal, error) {
	p, ok := FromContext(ctx)
	if !ok {
		return nil, apperr.New(apperr.Unauthenticated, "a valid bearer token is required")
	}
	if scope != "" && !p.Has(scope) {
		return nil, apperr.New(apperr.Forbidden, "this operation needs the %s scope", scope)
	}
	return p, nil
}

// ErrInvalidToken is returned for a missing, unknown, revoked or expired token.
var ErrInvalidToken = apperr.New(apperr.Unauthenticated, "invalid, revoked or expired bearer token")

// BearerToken extracts the token from an Authorization header value ("Bearer <token>").
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// Hash is the stored form of a token secret.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Service authenticates and manages tokens.
type Service struct {
	client *ent.Client
	log    *slog.Logger
	now    func() time.Time

	// lookups merges concurrent database lookups of one token: when its cache entry runs out,
	// every stream and connection of that token would otherwise query at the same moment.
	lookups singleflight.Group

	mu    sync.Mutex
	cache map[string]cachedToken
	// rechecked holds, per token id, when the database last confirmed it valid: many open
	// streams of one token then cost one query per cacheTTL, not one each.
	rechecked map[int]time.Time
}

type cachedToken struct {
	principal *Principal
	checked   time.Time
	lastUsed  time.Time
}

// NewService makes a Service.
func NewService(client *ent.Client, log *slog.Logger) *Service {
	return &Service{client: client, log: log.With("component", "auth"), now: time.Now, cache: map[string]cachedToken{}, rechecked: map[int]time.Time{}}
}

// Authenticate returns the principal of a token secret, or ErrInvalidToken.
func (s *Service) Authenticate(ctx context.Context, secret string) (*Principal, error) {
	if secret == "" || len(secret) > 256 {
		return nil, ErrInvalidToken
	}
	hash := Hash(secret)
	now := s.now()
	s.mu.Lock()
	c, ok := s.cache[hash]
	s.mu.Unlock()
	if ok && now.Sub(c.checked) < cacheTTL && !expired(c.principal.ExpiresAt, now) {
		return c.principal, nil
	}
	tok, err := s.lookup(ctx, "hash:"+hash, func(ctx context.Context) (*ent.ApiToken, error) {
		return s.client.ApiToken.Query().Where(apitoken.TokenHash(hash)).Only(ctx)
	})
	if ent.IsNotFound(err) {
		s.forget(hash)
		return nil, ErrInvalidToken
	}
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	if tok.RevokedAt != nil || expired(tok.ExpiresAt, now) {
		s.forget(hash)
		return nil, ErrInvalidToken
	}
	p := principalOf(tok)
	lastUsed := c.lastUsed
	if tok.LastUsedAt != nil && tok.LastUsedAt.After(lastUsed) {
		lastUsed = *tok.LastUsedAt
	}
	if now.Sub(lastUsed) >= lastUsedEvery {
		lastUsed = now
		// Only once a minute per token, so a busy producer does not turn every read into a write.
		if err := s.client.ApiToken.UpdateOneID(tok.ID).SetLastUsedAt(now.UTC()).Exec(ctx); err != nil {
			s.log.Warn("record token use", "token_id", tok.ID, "err", err)
		}
	}
	s.mu.Lock()
	s.cache[hash] = cachedToken{principal: p, checked: now, lastUsed: lastUsed}
	s.mu.Unlock()
	return p, nil
}

func (s *Service) forget(hash string) {
	s.mu.Lock()
	delete(s.cache, hash)
	s.mu.Unlock()
}

// Recheck verifies that the principal in ctx is still valid (not revoked, not expired). Open
// streams call it periodically so that revocation ends them.
func (s *Service) Recheck(ctx context.Context) error {
	p, ok := FromContext(ctx)
	if !ok {
		return ErrInvalidToken
	}
	now := s.now()
	if expired(p.ExpiresAt, now) {
		return ErrInvalidToken
	}
	s.mu.Lock()
	checked, ok := s.rechecked[p.TokenID]
	s.mu.Unlock()
	if ok && now.Sub(checked) < cacheTTL {
		return nil
	}
	tok, err := s.lookup(ctx, "id:"+strconv.Itoa(p.TokenID), func(ctx context.Context) (*ent.ApiToken, error) {
		return s.client.ApiToken.Get(ctx, p.TokenID)
	})
	if ent.IsNotFound(err) {
		return ErrInvalidToken
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A database hiccup is not a reason to drop a client; the next check decides.
		s.log.Warn("recheck token", "token_id", p.TokenID, "err", err)
		return nil
	}
	if tok.RevokedAt != nil || expired(tok.ExpiresAt, now) {
		return ErrInvalidToken
	}
	s.mu.Lock()
	s.rechecked[p.TokenID] = now
	s.mu.Unlock()
	return nil
}

// lookupTimeout bounds a merged token lookup, which runs without any one caller's cancellation.
const lookupTimeout = 10 * time.Second

// lookup runs get once for all concurrent callers with the same key. It runs without the first
// caller's cancellation (a closed stream must not fail the others' lookup); each caller still
// stops waiting when its own ctx ends. The token returned is shared: callers only read it.
func (s *Service) lookup(ctx context.Context, key string, get func(context.Context) (*ent.ApiToken, error)) (*ent.ApiToken, error) {
	ch := s.lookups.DoChan(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		return get(ctx)
	})
	select {
	case r := <-ch:
		tok, _ := r.Val.(*ent.ApiToken)
		return tok, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func expired(at *time.Time, now time.Time) bool { return at != nil && !now.Before(*at) }

func principalOf(t *ent.ApiToken) *Principal {
	return &Principal{TokenID: t.ID, Name: t.Name, Scopes: t.Scopes, EventTypes: t.EventTypes, ExpiresAt: t.ExpiresAt}
}

// NewSecret generates a token secret: "egt_" followed by 43 base62 characters (about 256 bits).
func NewSecret() (string, error) {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b strings.Builder
	b.WriteString(secretPrefix)
	max := big.NewInt(int64(len(alphabet)))
	for i := 0; i < secretChars; i++ {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generate token: %w", err)
		}
		b.WriteByte(alphabet[n.Int64()])
	}
	return b.String(), nil
}

// CreateInput describes a new token.
type CreateInput struct {
	Name       string
	Scopes     []string
	EventTypes []string
	ExpiresAt  *time.Time
	// Secret is used as the token instead of a generated one (the bootstrap admin token).
	Secret string
}

// Create stores a new token and returns it with its secret (shown once).
func (s *Service) Create(ctx context.Context, client *ent.Client, in CreateInput) (*ent.ApiToken, string, error) {
	if client == nil {
		client = s.client
	}
	if n := len([]rune(in.Name)); n < 1 || n > 255 {
		return nil, "", apperr.BadInput("input.name", "must be 1 to 255 characters")
	}
	if len(in.Scopes) == 0 {
		return nil, "", apperr.BadInput("input.scopes", "must name at least one scope")
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(s.now()) {
		return nil, "", apperr.BadInput("input.expiresAt", "must be in the future")
	}
	secret := in.Secret
	if secret == "" {
		var err error
		if secret, err = NewSecret(); err != nil {
			return nil, "", err
		}
	}
	create := client.ApiToken.Create().
		SetName(in.Name).
		SetPrefix(secret[:min(prefixLen, len(secret))]).
		SetTokenHash(Hash(secret)).
		SetScopes(dedupe(in.Scopes)).
		SetNillableExpiresAt(utc(in.ExpiresAt))
	if in.EventTypes != nil {
		create.SetEventTypes(dedupe(in.EventTypes))
	}
	tok, err := create.Save(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("create token: %w", err)
	}
	return tok, secret, nil
}

// Revoke marks a token revoked; its open streams end at their next recheck.
func (s *Service) Revoke(ctx context.Context, id int) (*ent.ApiToken, error) {
	tok, err := s.client.ApiToken.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, apperr.New(apperr.NotFound, "no API token with id %d", id)
	}
	if err != nil {
		return nil, fmt.Errorf("revoke token: %w", err)
	}
	if tok.RevokedAt == nil {
		if tok, err = tok.Update().SetRevokedAt(s.now().UTC()).Save(ctx); err != nil {
			return nil, fmt.Errorf("revoke token: %w", err)
		}
	}
	s.forget(tok.TokenHash)
	s.mu.Lock()
	delete(s.rechecked, id)
	s.mu.Unlock()
	return tok, nil
}

// Bootstrap creates the first admin token when the database has none. It returns the secret to
// print, or "" when tokens already exist. adminToken, when set, is used instead of a generated one.
func (s *Service) Bootstrap(ctx context.Context, adminToken string) (string, error) {
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return "", fmt.Errorf("bootstrap token: %w", err)
	}
	defer tx.Rollback()
	n, err := tx.ApiToken.Query().Count(ctx)
	if err != nil {
		return "", fmt.Errorf("bootstrap token: %w", err)
	}
	if n > 0 {
		return "", nil
	}
	_, secret, err := s.Create(ctx, tx.Client(), CreateInput{Name: "bootstrap admin", Scopes: []string{ScopeAdmin}, Secret: adminToken})
	if err != nil {
		return "", err
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("bootstrap token: %w", err)
	}
	return secret, nil
}

func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// IsInvalidToken reports whether err means the token was refused.
func IsInvalidToken(err error) bool { return errors.Is(err, ErrInvalidToken) }
