package graph

import (
	"context"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/webhook"
	"github.com/eventgate/eventgate/graph/scalar"
	"github.com/eventgate/eventgate/server/webhooks"
)

// RenderWebhookItems is a gqlgen field middleware that writes the items of a WebhookPage in one
// pass when every field selected on them is a plain read of the webhook (all of Webhook but
// deliveries and stats). gqlgen would otherwise start a goroutine per item and allocate a
// field context, a middleware closure and a marshaler per field and item: for the admin list
// of 50 webhooks that was half the CPU of the request (`make bench` scenario 5).
//
// The output is byte for byte what gqlgen writes (TestRenderedWebhookItemsMatchGqlgen holds
// them together). No field middleware sees the item fields it renders: RequireScopes, the
// other one, guards root fields only. Register it with exec.AroundFields.
func RenderWebhookItems(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Object != "WebhookPage" || fc.Field.Name != "items" {
		return next(ctx)
	}
	res, err := next(ctx)
	if err != nil {
		return res, err
	}
	items, ok := res.([]*ent.Webhook)
	if !ok {
		return res, nil
	}
	fields := graphql.CollectFields(graphql.GetOperationContext(ctx), fc.Field.Selections, webhookTypes)
	page := &webhookItems{items: items, fields: fields, write: make([]appendField, len(fields))}
	for i, f := range fields {
		// Deferred fields need gqlgen's incremental delivery; other fields need their resolvers.
		if page.write[i] = webhookFields[f.Name]; page.write[i] == nil || len(f.Deferrables) > 0 {
			return res, nil
		}
	}
	for _, w := range items {
		if w == nil { // gqlgen nulls the list and reports the item
			return res, nil
		}
	}
	return page, nil
}

// webhookTypes is what a Webhook satisfies in fragment type conditions.
var webhookTypes = []string{"Webhook"}

// appendField appends the JSON value of one field of w to b.
type appendField func(b []byte, w *ent.Webhook) []byte

// webhookFields are the Webhook fields RenderWebhookItems writes, each as gqlgen's generated
// marshaler for its type does.
var webhookFields = map[string]appendField{
	"__typename": func(b []byte, _ *ent.Webhook) []byte { return append(b, `"Webhook"`...) },
	"id": func(b []byte, w *ent.Webhook) []byte {
		return append(strconv.AppendInt(append(b, '"'), int64(w.ID), 10), '"')
	},
	"name": func(b []byte, w *ent.Webhook) []byte { return appendString(b, w.Name) },
	"url":  func(b []byte, w *ent.Webhook) []byte { return appendString(b, w.URL) },
	"eventTypes": func(b []byte, w *ent.Webhook) []byte {
		b = append(b, '[')
		for i, t := range w.EventTypes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, t)
		}
		return append(b, ']')
	},
	"isActive":    func(b []byte, w *ent.Webhook) []byte { return strconv.AppendBool(b, w.IsActive) },
	"description": func(b []byte, w *ent.Webhook) []byte { return appendOptional(b, w.Description, appendString) },
	"hasSecret":   func(b []byte, w *ent.Webhook) []byte { return strconv.AppendBool(b, hasSecret(w)) },
	"payloadFormat": func(b []byte, w *ent.Webhook) []byte {
		switch w.PayloadFormat {
		case webhook.PayloadFormatSTANDARD:
			return append(b, `"STANDARD"`...)
		case webhook.PayloadFormatLEGACY:
			return append(b, `"LEGACY"`...)
		default: // the generated marshaler looks the name up in a map and finds ""
			return append(b, `""`...)
		}
	},
	"timeoutSeconds": func(b []byte, w *ent.Webhook) []byte { return strconv.AppendInt(b, int64(w.TimeoutSeconds), 10) },
	"customHeaders": func(b []byte, w *ent.Webhook) []byte {
		out := appendWriter{b}
		scalar.MarshalJSON(webhooks.HeaderNames(w)).MarshalGQL(&out)
		return out.b
	},
	"rateLimitPerSecond": func(b []byte, w *ent.Webhook) []byte {
		return appendOptional(b, w.RateLimitPerSecond, func(b []byte, n int) []byte { return strconv.AppendInt(b, int64(n), 10) })
	},
	"createdAt":       func(b []byte, w *ent.Webhook) []byte { return scalar.AppendTime(b, w.CreatedAt) },
	"updatedAt":       func(b []byte, w *ent.Webhook) []byte { return scalar.AppendTime(b, w.UpdatedAt) },
	"lastTriggeredAt": func(b []byte, w *ent.Webhook) []byte { return appendOptional(b, w.LastTriggeredAt, scalar.AppendTime) },
	"successCount":    func(b []byte, w *ent.Webhook) []byte { return strconv.AppendInt(b, w.SuccessCount, 10) },
	"failureCount":    func(b []byte, w *ent.Webhook) []byte { return strconv.AppendInt(b, w.FailureCount, 10) },
	"disabledReason":  func(b []byte, w *ent.Webhook) []byte { return appendOptional(b, w.DisabledReason, appendString) },
}

// webhookItems is a rendered list of webhooks: a graphql.Marshaler, which gqlgen writes in
// place of the list.
type webhookItems struct {
	items  []*ent.Webhook
	fields []graphql.CollectedField
	write  []appendField
}

// itemSizeHint is about the length of one webhook with every plain field selected.
const itemSizeHint = 512

// MarshalGQL implements graphql.Marshaler.
func (p *webhookItems) MarshalGQL(w io.Writer) {
	b := make([]byte, 0, 2+len(p.items)*itemSizeHint)
	b = append(b, '[')
	for i, item := range p.items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		for j, f := range p.fields {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(appendString(b, f.Alias), ':')
			b = p.write[j](b, item)
		}
		b = append(b, '}')
	}
	_, _ = w.Write(append(b, ']'))
}

// appendOptional appends null for nil and *v otherwise.
func appendOptional[T any](b []byte, v *T, appendValue func([]byte, T) []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return appendValue(b, *v)
}

// appendString appends s quoted as gqlgen's MarshalString writes it: control characters,
// backslash and quote escaped; everything else, invalid UTF-8 included, copied as it is.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf || (c >= 0x20 && c != '\\' && c != '"') {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '\t':
			b = append(b, `\t`...)
		case '\r':
			b = append(b, `\r`...)
		case '\n':
			b = append(b, `\n`...)
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendWriter is an io.Writer appending to b, for values whose marshaler writes.
type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// hasSecret is the hasSecret field: every webhook has a secret (created with one, changed only
// by rotation), so lists need not load the sealed value.
func hasSecret(*ent.Webhook) bool { return true }
