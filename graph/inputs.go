package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/delivery"
	"github.com/eventgate/eventgate/ent/webhook"
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
func (r *Resolver) deliveryPage(ctx context.Context, f webhooks.DeliveryFilter, status *delivery.Status, limit, offset *int) (*model.DeliveryPage, error) {
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

// updateInput reads UpdateWebhookInput from the map gqlgen coerced it into (typed values;
// a present key with a nil value is an explicit null), telling omitted fields from nulls.
func updateInput(in map[string]any) (webhooks.UpdateInput, error) {
	var u webhooks.UpdateInput
	for key, v := range in {
		field := "input." + key
		switch key {
		case "name":
			if u.Name, _ = v.(*string); u.Name == nil {
				return u, apperr.BadInput(field, "must not be null")
			}
		case "url":
			if u.URL, _ = v.(*string); u.URL == nil {
				return u, apperr.BadInput(field, "must not be null")
			}
		case "eventTypes":
			u.EventTypes, _ = v.([]string)
			if u.EventTypes == nil {
				return u, apperr.BadInput(field, "must not be null")
			}
			u.EventTypesSet = true
		case "description":
			u.Description = webhooks.Field[string]{Set: true}
			u.Description.Value, _ = v.(*string)
		case "isActive":
			if u.IsActive, _ = v.(*bool); u.IsActive == nil {
				return u, apperr.BadInput(field, "must not be null")
			}
		case "payloadFormat":
			f, _ := v.(*webhook.PayloadFormat)
			if f == nil {
				return u, apperr.BadInput(field, "must not be null")
			}
			s := string(*f)
			u.PayloadFormat = &s
		case "timeoutSeconds":
			if u.TimeoutSeconds, _ = v.(*int); u.TimeoutSeconds == nil {
				return u, apperr.BadInput(field, "must not be null")
			}
		case "customHeaders":
			u.CustomHeaders = webhooks.Field[json.RawMessage]{Set: true}
			if raw, _ := v.(json.RawMessage); raw != nil {
				u.CustomHeaders.Value = &raw
			}
		case "rateLimitPerSecond":
			u.RateLimitPerSecond = webhooks.Field[int]{Set: true}
			u.RateLimitPerSecond.Value, _ = v.(*int)
		default:
			return u, apperr.BadInput(field, "unknown field")
		}
	}
	return u, nil
}
