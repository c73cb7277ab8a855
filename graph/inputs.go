package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/graph/model"
	"github.com/eventgate/eventgate/server/apperr"
	"github.com/eventgate/eventgate/server/auth"
	"github.com/eventgate/eventgate/server/catalog"
	"github.com/eventgate/eventgate/server/events"
	"github.com/eventgate/eventgate/server/webhooks"
)

// parseID reads a decimal row id; anything else names no row.
func parseID(id string) (int, bool) {
	n, err := strconv.Atoi(id)
	return n, err == nil && n > 0
}

func valueOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func webhookNotFound(id string) error {
	return apperr.New(apperr.NotFound, "no webhook with id %s", id)
}

func inputsPrefix(i int) string { return fmt.Sprintf("inputs[%d].", i) }

// publish checks the caller's rate and stores the events.
func (r *Resolver) publish(ctx context.Context, inputs []*model.PublishEventInput, prefix func(int) string) ([]*ent.Event, error) {
	p, err := auth.Require(ctx, auth.ScopeEventsPublish)
	if err != nil {
		return nil, err
	}
	in := make([]events.Input, len(inputs))
	for i, x := range inputs {
		if !p.CanSee(x.Type) {
			return nil, apperr.New(apperr.Forbidden, "this token may not publish %s events", x.Type)
		}
		in[i] = events.Input{Type: x.Type, Payload: x.Payload, ID: x.ID, OccurredAt: x.OccurredAt}
	}
	if err := r.EventService.Allow(p.TokenID, len(in)); err != nil {
		return nil, err
	}
	out, _, err := r.EventService.Publish(ctx, in, prefix)
	return out, err
}

// deliveryPage lists deliveries visible to the caller.
func (r *Resolver) deliveryPage(ctx context.Context, f webhooks.DeliveryFilter, status *model.DeliveryStatus, limit, offset *int) (*model.DeliveryPage, error) {
	l, o, err := webhooks.ValidatePage(limit, offset)
	if err != nil {
		return nil, err
	}
	if p, ok := auth.FromContext(ctx); ok && p.EventTypes != nil {
		f.EventTypes = p.EventTypes
	}
	if status != nil {
		s := string(*status)
		f.Status = &s
	}
	f.Limit, f.Offset = l, o
	items, total, err := r.WebhookService.Deliveries(ctx, f)
	if err != nil {
		return nil, err
	}
	return &model.DeliveryPage{Items: items, Total: total, Limit: l, Offset: o}, nil
}

// visibleTypes intersects the asked types with what the caller may see. nil means all types;
// an empty slice means none.
func visibleTypes(ctx context.Context, asked []string) ([]string, error) {
	if err := validateEventTypeNames("types", asked); err != nil {
		return nil, err
	}
	p, ok := auth.FromContext(ctx)
	if !ok {
		return nil, apperr.New(apperr.Unauthenticated, "a valid bearer token is required")
	}
	if asked == nil {
		return p.EventTypes, nil
	}
	out := []string{}
	for _, t := range asked {
		if p.CanSee(t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func validateEventTypeNames(field string, types []string) error {
	for i, t := range types {
		if _, ok := catalog.Lookup(t); !ok {
			return apperr.BadInput(fmt.Sprintf("%s[%d]", field, i), "unknown event type %q", t)
		}
	}
	return nil
}

func eventTypeInfos() []*model.EventTypeInfo {
	all := catalog.All()
	out := make([]*model.EventTypeInfo, len(all))
	for i, t := range all {
		out[i] = &model.EventTypeInfo{Name: t.Name, Description: t.Description, Schema: t.Schema}
	}
	return out
}

// updateInput reads UpdateWebhookInput from its raw map, telling omitted fields from explicit nulls.
func updateInput(in map[string]any) (webhooks.UpdateInput, error) {
	var u webhooks.UpdateInput
	for key, v := range in {
		field := "input." + key
		switch key {
		case "name":
			s, err := nonNullString(field, v)
			if err != nil {
				return u, err
			}
			u.Name = &s
		case "url":
			s, err := nonNullString(field, v)
			if err != nil {
				return u, err
			}
			u.URL = &s
		case "eventTypes":
			list, ok := v.([]any)
			if !ok {
				return u, apperr.BadInput(field, "must be a list of event types")
			}
			u.EventTypesSet = true
			u.EventTypes = make([]string, len(list))
			for i, x := range list {
				s, ok := x.(string)
				if !ok {
					return u, apperr.BadInput(fmt.Sprintf("%s[%d]", field, i), "must be a string")
				}
				u.EventTypes[i] = s
			}
		case "description":
			u.Description.Set = true
			if v != nil {
				s, ok := v.(string)
				if !ok {
					return u, apperr.BadInput(field, "must be a string")
				}
				u.Description.Value = &s
			}
		case "isActive":
			b, ok := v.(bool)
			if !ok {
				return u, apperr.BadInput(field, "must be true or false")
			}
			u.IsActive = &b
		case "payloadFormat":
			s, err := nonNullString(field, v)
			if err != nil {
				return u, err
			}
			if !model.PayloadFormat(s).IsValid() {
				return u, apperr.BadInput(field, "must be STANDARD or LEGACY")
			}
			u.PayloadFormat = &s
		case "timeoutSeconds":
			n, err := intValue(field, v)
			if err != nil {
				return u, err
			}
			u.TimeoutSeconds = &n
		case "customHeaders":
			u.CustomHeaders.Set = true
			if v != nil {
				raw, err := json.Marshal(v)
				if err != nil {
					return u, apperr.BadInput(field, "must be an object")
				}
				msg := json.RawMessage(raw)
				u.CustomHeaders.Value = &msg
			}
		case "rateLimitPerSecond":
			u.RateLimitPerSecond.Set = true
			if v != nil {
				n, err := intValue(field, v)
				if err != nil {
					return u, err
				}
				u.RateLimitPerSecond.Value = &n
			}
		default:
			return u, apperr.BadInput(field, "unknown field")
		}
	}
	return u, nil
}

func nonNullString(field string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", apperr.BadInput(field, "must be a string, not null")
	}
	return s, nil
}

// intValue reads an Int from a raw input value (variables decode numbers as json.Number;
// inline literals as int64).
func intValue(field string, v any) (int, error) {
	switch n := v.(type) {
	case int:
		return n, nil
	case int64:
		if n >= math.MinInt32 && n <= math.MaxInt32 {
			return int(n), nil
		}
	case float64:
		if n == math.Trunc(n) && math.Abs(n) <= math.MaxInt32 {
			return int(n), nil
		}
	case json.Number:
		if i, err := n.Int64(); err == nil && i >= math.MinInt32 && i <= math.MaxInt32 {
			return int(i), nil
		}
	}
	return 0, apperr.BadInput(field, "must be an integer")
}
