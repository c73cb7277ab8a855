// Package events is the event side of eventgate: ingest (validation, idempotency, the outbox
// transaction that writes an event with one delivery per subscribed webhook), the durable log
// (cursor paging, retention) and live streams that replay from the log and then follow the bus
// with no gap and no duplicate.
package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/server/apperr"
	"github.com/eventgate/eventgate/server/catalog"
	"github.com/eventgate/eventgate/server/eventbus"
)

// Limits of ingest (DESIGN.md §3).
const (
	MaxPayloadBytes = 256 << 10
	MaxBatch        = 500
	maxIDLen        = 128
	bulkRows        = 1000
)

// Notifier is told about committed work: the dispatcher wakes on new deliveries.
type Notifier interface{ Wake() }

// Options configure the Service.
type Options struct {
	// PublishRate and PublishBurst limit events per second per token.
	PublishRate  float64
	PublishBurst int
	// Retention is how long events are kept.
	Retention time.Duration
	// Shared is set when several instances share a PostgreSQL database. Ingest transactions then
	// take a transaction-scoped advisory lock before inserting, so log positions are assigned in
	// commit order across instances (a reader resuming from any cursor never skips an event that
	// commits later with a smaller one), and announce commits with NOTIFY; each instance's relay
	// (package pgnotify) feeds the buses from the log instead of ingest publishing directly.
	Shared bool
	// OnStored, when set, is told about every newly stored event after its commit (metrics).
	OnStored func(*ent.Event)
}

// Notification channels (suffixed with the schema, so schemas sharing a database stay apart).
const (
	EventsChannel     = "eventgate_events_"
	DeliveriesChannel = "eventgate_deliveries_"
)

// Service ingests and serves events.
type Service struct {
	client     *ent.Client
	bus        *eventbus.Bus[*ent.Event]
	deliveries *eventbus.Bus[*ent.Delivery]
	log        *slog.Logger
	opts       Options
	now        func() time.Time

	// writes groups concurrent publishes into shared transactions (see write.go).
	writes groupCommit
	// cursors are the latest events' cursors, which every live stream sends (stream.go).
	cursors cursorMemo

	limMu    sync.Mutex
	limiters map[int]*rate.Limiter

	notifyMu sync.RWMutex
	notifier Notifier
}

// NewService makes a Service. bus carries committed events; deliveries carries delivery changes.
func NewService(client *ent.Client, bus *eventbus.Bus[*ent.Event], deliveries *eventbus.Bus[*ent.Delivery], opts Options, log *slog.Logger) *Service {
	return &Service{
		client: client, bus: bus, deliveries: deliveries, opts: opts,
		log: log.With("component", "events"), now: func() time.Time { return time.Now().UTC() },
		limiters: map[int]*rate.Limiter{},
	}
}

// SetNotifier sets who is woken after deliveries are committed (the dispatcher, made later).
func (s *Service) SetNotifier(n Notifier) {
	s.notifyMu.Lock()
	s.notifier = n
	s.notifyMu.Unlock()
}

// Input is one event to publish.
type Input struct {
	Type       string
	Payload    json.RawMessage
	ID         *string
	OccurredAt *time.Time
}

// prepared is a validated input.
type prepared struct {
	Input
	id      string
	payload []byte
	hash    string
	field   string // prefix of error fields, e.g. "inputs[3]."
}

// Allow spends n events of a token's publish budget, or returns RATE_LIMITED.
func (s *Service) Allow(tokenID, n int) error {
	s.limMu.Lock()
	lim, ok := s.limiters[tokenID]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(s.opts.PublishRate), s.opts.PublishBurst)
		s.limiters[tokenID] = lim
	}
	s.limMu.Unlock()
	r := lim.ReserveN(time.Now(), n)
	if !r.OK() {
		return &apperr.Error{Code: apperr.RateLimited, Message: fmt.Sprintf("a batch of %d exceeds the publish burst", n), HTTPStatus: 429,
			Extra: map[string]any{"retryAfterSeconds": 1}}
	}
	if d := r.Delay(); d > 0 {
		r.Cancel()
		secs := int(d/time.Second) + 1
		return &apperr.Error{Code: apperr.RateLimited, Message: "publish rate exceeded; retry later", HTTPStatus: 429,
			Extra: map[string]any{"retryAfterSeconds": secs}}
	}
	return nil
}

// Publish validates and stores events, all or nothing, with one PENDING delivery per active
// webhook subscribed to each new event's type. An input whose id is already stored with the same
// type and payload returns the stored event and creates nothing. created reports whether any
// event was new. Subscribers and the dispatcher are told only after the commit.
func (s *Service) Publish(ctx context.Context, inputs []Input, fieldPrefix func(i int) string) (out []*ent.Event, created bool, err error) {
	if len(inputs) == 0 {
		return nil, false, nil
	}
	if len(inputs) > MaxBatch {
		return nil, false, apperr.BadInput("inputs", "at most %d events per call", MaxBatch)
	}
	preps := make([]prepared, len(inputs))
	for i, in := range inputs {
		if preps[i], err = s.prepare(in, fieldPrefix(i)); err != nil {
			return nil, false, err
		}
	}
	out, fresh, _, err := s.commit(ctx, preps, nil)
	if err != nil {
		return nil, false, err
	}
	return out, len(fresh) > 0, nil
}

// Emit stores an event that eventgate itself produces (webhook.test, webhook.disabled), skipping
// the reserved-type rule. With target set, the only delivery goes to that webhook, whatever its
// types; otherwise to every active webhook subscribed to the type. It returns the event and the
// deliveries created.
func (s *Service) Emit(ctx context.Context, eventType string, payload any, target *int) (*ent.Event, []*ent.Delivery, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return nil, nil, fmt.Errorf("encode %s payload: %w", eventType, err)
	}
	p := prepared{Input: Input{Type: eventType, Payload: raw}, id: "evt_" + uuid.Must(uuid.NewV7()).String(), payload: raw}
	if p.hash, err = canonicalHash(eventType, raw); err != nil {
		return nil, nil, err
	}
	out, _, deliveries, err := s.commit(ctx, []prepared{p}, target)
	if err != nil {
		return nil, nil, err
	}
	return out[0], deliveries, nil
}

func (s *Service) wake() {
	s.notifyMu.RLock()
	n := s.notifier
	s.notifyMu.RUnlock()
	if n != nil {
		n.Wake()
	}
}

func (s *Service) prepare(in Input, prefix string) (prepared, error) {
	p := prepared{Input: in, field: prefix}
	if in.Type == "" {
		return p, apperr.BadInput(prefix+"type", "is required")
	}
	if catalog.IsReserved(in.Type) {
		return p, apperr.BadInput(prefix+"type", "%q is reserved: only eventgate emits webhook.* events", in.Type)
	}
	if len(in.Payload) > MaxPayloadBytes {
		return p, &apperr.Error{Code: apperr.BadUserInput, Field: prefix + "payload", HTTPStatus: 413,
			Message: fmt.Sprintf("payload is %d bytes; the limit is %d", len(in.Payload), MaxPayloadBytes)}
	}
	if err := catalog.Validate(in.Type, in.Payload); err != nil {
		return p, apperr.WithPrefix(err, prefix)
	}
	if in.ID != nil {
		if !ValidID(*in.ID) {
			return p, apperr.BadInput(prefix+"id", "must be 1 to %d of A-Z a-z 0-9 _ - :", maxIDLen)
		}
		p.id = *in.ID
	} else {
		p.id = "evt_" + uuid.Must(uuid.NewV7()).String()
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, in.Payload); err != nil {
		return p, apperr.BadInput(prefix+"payload", "is not valid JSON")
	}
	p.payload = compact.Bytes()
	hash, err := canonicalHash(in.Type, p.payload)
	if err != nil {
		return p, apperr.BadInput(prefix+"payload", "is not valid JSON")
	}
	p.hash = hash
	return p, nil
}

// ValidID reports whether id is a valid producer event id.
func ValidID(id string) bool {
	if len(id) < 1 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == ':') {
			return false
		}
	}
	return true
}

// canonicalHash hashes the type and the payload with object keys sorted, so a retry that
// reorders keys is still the same event.
func canonicalHash(eventType string, payload []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	canon, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(eventType))
	h.Write([]byte{0})
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil)), nil
}
