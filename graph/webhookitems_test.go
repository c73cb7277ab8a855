package graph

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/webhook"
	"github.com/eventgate/eventgate/graph/generated"
	"github.com/eventgate/eventgate/graph/model"
	"github.com/eventgate/eventgate/server/auth"
	"github.com/eventgate/eventgate/server/webhooks"
)

// listRoot is the real resolver with a fixed page of webhooks and stats, so no database is needed.
type listRoot struct {
	*Resolver
	items []*ent.Webhook
}

func (r listRoot) Query() generated.QueryResolver { return listQuery{r.Resolver.Query(), r.items} }
func (r listRoot) Webhook() generated.WebhookResolver {
	return listWebhook{r.Resolver.Webhook()}
}

type listQuery struct {
	generated.QueryResolver
	items []*ent.Webhook
}

func (q listQuery) Webhooks(context.Context, *string, *bool, *int, *int) (*model.WebhookPage, error) {
	return &model.WebhookPage{Items: q.items, Total: len(q.items), Limit: 50}, nil
}

type listWebhook struct{ generated.WebhookResolver }

func (listWebhook) Stats(context.Context, *ent.Webhook, *time.Time) (*webhooks.Stats, error) {
	return &webhooks.Stats{TotalDeliveries: 3}, nil
}

// listedWebhooks covers every kind of value: escapes, invalid UTF-8, nulls and non-nulls,
// times in other zones, both payload formats and one no name is known for.
func listedWebhooks() []*ent.Webhook {
	ptr := func(s string) *string { return &s }
	rate := 7
	last := time.Date(2026, 3, 4, 5, 6, 7, 891000000, time.FixedZone("X", 3600))
	return []*ent.Webhook{
		{
			ID: 1, Name: "plain", URL: "http://127.0.0.1:9/a", EventTypes: []string{"user.created", "order.paid"},
			IsActive: true, PayloadFormat: webhook.PayloadFormatSTANDARD, TimeoutSeconds: 30,
			CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
		},
		{
			ID: 1 << 40, Name: "q\"b\\s\n\r\t\x01\x1f é \xff ✓", URL: "http://h/<&>", EventTypes: []string{},
			Description: ptr("d\u2028e"), PayloadFormat: webhook.PayloadFormatLEGACY, TimeoutSeconds: 1,
			CustomHeaderNames: []string{"X-B", "X-A"}, RateLimitPerSecond: &rate,
			CreatedAt: last, UpdatedAt: last.Add(time.Hour), LastTriggeredAt: &last,
			SuccessCount: 1 << 50, FailureCount: -1, DisabledReason: ptr("too many failures"),
		},
		{ID: 3, PayloadFormat: webhook.PayloadFormat("unknown")},
	}
}

// run executes query over items, with RenderWebhookItems as the field middleware when render
// is set, and returns the data written and whether the items were rendered by it.
func run(t *testing.T, items []*ent.Webhook, render bool, query string, vars map[string]any) (string, bool) {
	t.Helper()
	exec := executor.New(generated.NewExecutableSchema(generated.Config{Resolvers: listRoot{&Resolver{}, items}}))
	rendered := false
	if render {
		exec.AroundFields(func(ctx context.Context, next graphql.Resolver) (any, error) {
			res, err := RenderWebhookItems(ctx, next)
			if _, ok := res.(*webhookItems); ok {
				rendered = true
			}
			return res, err
		})
	}
	ctx := graphql.StartOperationTrace(context.Background())
	opCtx, errs := exec.CreateOperationContext(ctx, &graphql.RawParams{Query: query, Variables: vars})
	if len(errs) > 0 {
		t.Fatalf("got errors %v, want none", errs)
	}
	responses, execCtx := exec.DispatchOperation(ctx, opCtx)
	resp := responses(execCtx)
	if len(resp.Errors) > 0 {
		t.Fatalf("got errors %v, want none", resp.Errors)
	}
	if !json.Valid(resp.Data) {
		t.Fatalf("got invalid JSON %s", resp.Data)
	}
	return string(resp.Data), rendered
}

func TestRenderedWebhookItemsMatchGqlgen(t *testing.T) {
	tests := []struct {
		name     string
		query    string
		vars     map[string]any
		items    []*ent.Webhook
		rendered bool
	}{
		{
			name: "every plain field",
			query: `{ webhooks { total items { __typename id name url eventTypes isActive description hasSecret payloadFormat
				timeoutSeconds customHeaders rateLimitPerSecond createdAt updatedAt lastTriggeredAt successCount failureCount disabledReason } } }`,
			items: listedWebhooks(), rendered: true,
		},
		{
			name: "aliases, fragments, skip and include",
			query: `query($yes: Boolean!) { webhooks { items { n: name name ...F @include(if: $yes) ... on Webhook { id @skip(if: $yes) url }
				x: id @include(if: false) ...F } } } fragment F on Webhook { createdAt eventTypes n: name }`,
			vars: map[string]any{"yes": true}, items: listedWebhooks(), rendered: true,
		},
		{name: "no items", query: `{ webhooks { items { id name } } }`, items: []*ent.Webhook{}, rendered: true},
		{
			name:  "a field with a resolver of its own",
			query: `{ webhooks { items { id stats { totalDeliveries } } } }`, items: listedWebhooks(), rendered: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, _ := run(t, tt.items, false, tt.query, tt.vars)
			got, rendered := run(t, tt.items, true, tt.query, tt.vars)
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			if rendered != tt.rendered {
				t.Errorf("got rendered %v, want %v", rendered, tt.rendered)
			}
		})
	}
}

// BenchmarkWebhookItems executes the admin list query (`make bench` scenario 5) over a page of
// 50 webhooks without a database: "gqlgen" as the generated executor writes the items,
// "rendered" with RenderWebhookItems.
func BenchmarkWebhookItems(b *testing.B) {
	items := make([]*ent.Webhook, 50)
	for i := range items {
		w := *listedWebhooks()[i%2]
		w.ID = i + 1
		items[i] = &w
	}
	const query = `{ webhooks(limit: 50) { total items { id name url eventTypes isActive description hasSecret payloadFormat
		timeoutSeconds rateLimitPerSecond createdAt updatedAt lastTriggeredAt successCount failureCount disabledReason } } }`
	for _, render := range []bool{false, true} {
		name := "gqlgen"
		exec := executor.New(generated.NewExecutableSchema(generated.Config{Resolvers: listRoot{&Resolver{}, items}}))
		exec.SetQueryCache(lru.New[*ast.QueryDocument](1)) // parsed once, as in production
		exec.AroundFields(RequireScopes)
		if render {
			name = "rendered"
			exec.AroundFields(RenderWebhookItems)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ctx := auth.WithPrincipal(graphql.StartOperationTrace(context.Background()), &auth.Principal{Name: "admin", Scopes: []string{auth.ScopeAdmin}})
				opCtx, errs := exec.CreateOperationContext(ctx, &graphql.RawParams{Query: query})
				if len(errs) > 0 {
					b.Fatal(errs)
				}
				responses, execCtx := exec.DispatchOperation(ctx, opCtx)
				if resp := responses(execCtx); len(resp.Errors) > 0 {
					b.Fatal(resp.Errors)
				}
			}
		})
	}
}
