// Package webhooks manages webhook endpoints: validation, secrets (sealed at rest, shown once),
// rotation with a grace period, and the read side of deliveries and statistics.
package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	entsql "entgo.io/ent/dialect/sql"
	"entgo.io/ent/dialect/sql/sqljson"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/schema"
	"github.com/eventgate/eventgate/ent/webhook"
	"github.com/eventgate/eventgate/server/apperr"
	"github.com/eventgate/eventgate/server/netguard"
	"github.com/eventgate/eventgate/server/secretbox"
	"github.com/eventgate/eventgate/server/signing"
)

// Service manages webhooks.
type Service struct {
	client *ent.Client
	box    *secretbox.Box
	guard  *netguard.Guard
	now    func() time.Time
	// onDeliveries is told about deliveries created or made due again.
	onDeliveries func([]*ent.Delivery)
	// onActivated is told when a webhook is enabled, so its waiting deliveries go out now.
	onActivated func()
	// onChanged is told when a webhook was updated, had its secret rotated or was deleted, so
	// that requests not yet sent do not go out with what it was before.
	onChanged func(id int)
}

// NewService makes a Service.
func NewService(client *ent.Client, box *secretbox.Box, guard *netguard.Guard) *Service {
	return &Service{client: client, box: box, guard: guard, now: func() time.Time { return time.Now().UTC() }}
}

// CreateInput is a new webhook.
type CreateInput struct {
	Name               string
	URL                string
	EventTypes         []string
	Secret             *string
	Description        *string
	IsActive           bool
	PayloadFormat      string
	TimeoutSeconds     int
	CustomHeaders      json.RawMessage
	RateLimitPerSecond *int
}

// Create validates and stores a webhook; it returns the webhook and its secret (shown once).
func (s *Service) Create(ctx context.Context, in CreateInput) (*ent.Webhook, string, error) {
	if err := validateName("input.name", in.Name); err != nil {
		return nil, "", err
	}
	if err := s.checkURL(ctx, "input.url", in.URL); err != nil {
		return nil, "", err
	}
	if err := validateEventTypes("input.eventTypes", in.EventTypes); err != nil {
		return nil, "", err
	}
	if err := validateTimeout("input.timeoutSeconds", in.TimeoutSeconds); err != nil {
		return nil, "", err
	}
	if err := validateRateLimit("input.rateLimitPerSecond", in.RateLimitPerSecond); err != nil {
		return nil, "", err
	}
	headers, err := parseCustomHeaders("input.customHeaders", in.CustomHeaders)
	if err != nil {
		return nil, "", err
	}
	secret, sealed, err := s.newSecret("input.secret", in.Secret)
	if err != nil {
		return nil, "", err
	}
	create := s.client.Webhook.Create().
		SetName(in.Name).
		SetURL(in.URL).
		SetEventTypes(in.EventTypes).
		SetIsActive(in.IsActive).
		SetNillableDescription(in.Description).
		SetSecretCiphertext(sealed).
		SetPayloadFormat(webhook.PayloadFormat(in.PayloadFormat)).
		SetTimeoutSeconds(in.TimeoutSeconds).
		SetNillableRateLimitPerSecond(in.RateLimitPerSecond)
	if headers != nil {
		sealedHeaders, names, err := s.sealHeaders(headers)
		if err != nil {
			return nil, "", err
		}
		create.SetCustomHeadersCiphertext(sealedHeaders).SetCustomHeaderNames(names)
	}
	w, err := create.Save(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("create webhook: %w", err)
	}
	return w, secret, nil
}

// Field is an optional input field that can also be explicitly null: Set says it was given,
// a nil Value with Set means "clear".
type Field[T any] struct {
	Set   bool
	Value *T
}

// UpdateInput holds the changes to a webhook; nil pointers and unset Fields stay unchanged.
type UpdateInput struct {
	Name               *string
	URL                *string
	EventTypes         []string
	EventTypesSet      bool
	Description        Field[string]
	IsActive           *bool
	PayloadFormat      *string
	TimeoutSeconds     *int
	CustomHeaders      Field[json.RawMessage]
	RateLimitPerSecond Field[int]
}

// Update changes a webhook. Setting isActive to true clears the disabled reason and failure state.
func (s *Service) Update(ctx context.Context, id int, in UpdateInput) (*ent.Webhook, error) {
	upd := s.client.Webhook.UpdateOneID(id)
	if in.Name != nil {
		if err := validateName("input.name", *in.Name); err != nil {
			return nil, err
		}
		upd.SetName(*in.Name)
	}
	if in.URL != nil {
		if err := s.checkURL(ctx, "input.url", *in.URL); err != nil {
			return nil, err
		}
		upd.SetURL(*in.URL)
	}
	if in.EventTypesSet {
		if err := validateEventTypes("input.eventTypes", in.EventTypes); err != nil {
			return nil, err
		}
		upd.SetEventTypes(in.EventTypes)
	}
	if in.Description.Set {
		if in.Description.Value == nil {
			upd.ClearDescription()
		} else {
			upd.SetDescription(*in.Description.Value)
		}
	}
	if in.IsActive != nil {
		upd.SetIsActive(*in.IsActive)
		if *in.IsActive {
			upd.ClearDisabledReason().SetConsecutiveFailures(0).ClearFirstFailureAt()
		}
	}
	if in.PayloadFormat != nil {
		upd.SetPayloadFormat(webhook.PayloadFormat(*in.PayloadFormat))
	}
	if in.TimeoutSeconds != nil {
		if err := validateTimeout("input.timeoutSeconds", *in.TimeoutSeconds); err != nil {
			return nil, err
		}
		upd.SetTimeoutSeconds(*in.TimeoutSeconds)
	}
	if in.RateLimitPerSecond.Set {
		if err := validateRateLimit("input.rateLimitPerSecond", in.RateLimitPerSecond.Value); err != nil {
			return nil, err
		}
		if in.RateLimitPerSecond.Value == nil {
			upd.ClearRateLimitPerSecond()
		} else {
			upd.SetRateLimitPerSecond(*in.RateLimitPerSecond.Value)
		}
	}
	if in.CustomHeaders.Set {
		var raw json.RawMessage
		if in.CustomHeaders.Value != nil {
			raw = *in.CustomHeaders.Value
		}
		headers, err := parseCustomHeaders("input.customHeaders", raw)
		if err != nil {
			return nil, err
		}
		if headers == nil {
			upd.ClearCustomHeadersCiphertext().ClearCustomHeaderNames()
		} else {
			sealed, names, err := s.sealHeaders(headers)
			if err != nil {
				return nil, err
			}
			upd.SetCustomHeadersCiphertext(sealed).SetCustomHeaderNames(names)
		}
	}
	w, err := upd.Save(ctx)
	if ent.IsNotFound(err) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("update webhook: %w", err)
	}
	s.changed(id)
	if in.IsActive != nil && *in.IsActive && s.onActivated != nil {
		s.onActivated()
	}
	return w, nil
}

// Delete removes a webhook with its deliveries and attempts (cascading foreign keys).
func (s *Service) Delete(ctx context.Context, id int) (bool, error) {
	err := s.client.Webhook.DeleteOneID(id).Exec(ctx)
	if ent.IsNotFound(err) {
		return false, notFound(id)
	}
	if err != nil {
		return false, fmt.Errorf("delete webhook: %w", err)
	}
	s.changed(id)
	return true, nil
}

// Rotate replaces a webhook's secret. The previous secret keeps signing for grace; at most
// maxOldSecrets old secrets are kept, newest first.
func (s *Service) Rotate(ctx context.Context, id int, given *string, grace time.Duration) (*ent.Webhook, string, error) {
	if grace < 0 || grace > maxGraceSeconds*time.Second {
		return nil, "", apperr.BadInput("gracePeriodSeconds", "must be between 0 and %d", maxGraceSeconds)
	}
	secret, sealed, err := s.newSecret("secret", given)
	if err != nil {
		return nil, "", err
	}
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("rotate secret: %w", err)
	}
	defer tx.Rollback()
	w, err := tx.Webhook.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, "", notFound(id)
	}
	if err != nil {
		return nil, "", fmt.Errorf("rotate secret: %w", err)
	}
	now := s.now()
	old := make([]schema.OldSecret, 0, maxOldSecrets)
	if grace > 0 {
		old = append(old, schema.OldSecret{Ciphertext: w.SecretCiphertext, ExpiresAt: now.Add(grace)})
	}
	for _, o := range w.OldSecrets {
		if o.ExpiresAt.After(now) && len(old) < maxOldSecrets {
			old = append(old, o)
		}
	}
	w, err = tx.Webhook.UpdateOne(w).SetSecretCiphertext(sealed).SetOldSecrets(old).Save(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("rotate secret: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, "", fmt.Errorf("rotate secret: %w", err)
	}
	s.changed(id)
	return w.Unwrap(), secret, nil
}

// Get returns a webhook, or nil when there is none with that id.
func (s *Service) Get(ctx context.Context, id int) (*ent.Webhook, error) {
	w, err := s.client.Webhook.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get webhook: %w", err)
	}
	return w, nil
}

// ListFilter selects webhooks.
type ListFilter struct {
	EventType     *string
	IsActive      *bool
	Limit, Offset int
}

// List returns a page of webhooks, newest first, and the total matching the filter.
func (s *Service) List(ctx context.Context, f ListFilter) ([]*ent.Webhook, int, error) {
	q := s.client.Webhook.Query()
	if f.EventType != nil {
		q.Where(func(sel *entsql.Selector) {
			sel.Where(sqljson.ValueContains(webhook.FieldEventTypes, *f.EventType))
		})
	}
	if f.IsActive != nil {
		q.Where(webhook.IsActive(*f.IsActive))
	}
	total, err := q.Clone().Count(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("count webhooks: %w", err)
	}
	// Secrets stay in the database on reads: they are large, sealed and never shown.
	items, err := q.Order(ent.Desc(webhook.FieldCreatedAt), ent.Desc(webhook.FieldID)).Limit(f.Limit).Offset(f.Offset).
		Select(readColumns...).All(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list webhooks: %w", err)
	}
	return items, total, nil
}

// readColumns are the webhook columns the API shows: everything but the sealed secrets and
// header values, and the dispatcher's failure streak, which no field shows. Each column less
// is 50 values less to convert per page.
var readColumns = func() []string {
	var cols []string
	for _, c := range webhook.Columns {
		switch c {
		case webhook.FieldSecretCiphertext, webhook.FieldOldSecrets, webhook.FieldCustomHeadersCiphertext,
			webhook.FieldConsecutiveFailures, webhook.FieldFirstFailureAt:
		default:
			cols = append(cols, c)
		}
	}
	return cols
}()

// HeaderNames returns the custom header names of a webhook with their values redacted.
func HeaderNames(w *ent.Webhook) json.RawMessage {
	if len(w.CustomHeaderNames) == 0 {
		return nil
	}
	redacted := make(map[string]string, len(w.CustomHeaderNames))
	for _, n := range w.CustomHeaderNames {
		redacted[n] = "[redacted]"
	}
	b, _ := json.Marshal(redacted)
	return b
}

func (s *Service) checkURL(ctx context.Context, field, raw string) error {
	if len(raw) > maxURLLen {
		return apperr.BadInput(field, "must be at most %d characters", maxURLLen)
	}
	if err := s.guard.CheckURL(ctx, raw); err != nil {
		var blocked *netguard.BlockedError
		if errors.As(err, &blocked) {
			return apperr.BadInput(field, "%s (EVENTGATE_ALLOWED_TARGETS can permit it)", blocked.Error())
		}
		return apperr.BadInput(field, "%s", err.Error())
	}
	return nil
}

// newSecret validates a given secret or generates one, and seals it.
func (s *Service) newSecret(field string, given *string) (plain string, sealed []byte, err error) {
	if given != nil {
		if err := signing.ValidateSecret(*given); err != nil {
			return "", nil, apperr.BadInput(field, "%s", err.Error())
		}
		plain = *given
	} else if plain, err = signing.GenerateSecret(); err != nil {
		return "", nil, err
	}
	sealed, err = s.box.Seal([]byte(plain))
	if err != nil {
		return "", nil, fmt.Errorf("seal secret: %w", err)
	}
	return plain, sealed, nil
}

func (s *Service) sealHeaders(headers map[string]string) ([]byte, []string, error) {
	plain, err := json.Marshal(headers)
	if err != nil {
		return nil, nil, fmt.Errorf("encode headers: %w", err)
	}
	sealed, err := s.box.Seal(plain)
	if err != nil {
		return nil, nil, fmt.Errorf("seal headers: %w", err)
	}
	names := make([]string, 0, len(headers))
	for n := range headers {
		names = append(names, n)
	}
	sort.Strings(names)
	return sealed, names, nil
}

func notFound(id int) error { return apperr.New(apperr.NotFound, "no webhook with id %d", id) }

// round2 rounds to two decimals.
func round2(f float64) float64 { return math.Round(f*100) / 100 }
