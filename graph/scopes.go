package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/eventgate/eventgate/server/apperr"
	"github.com/eventgate/eventgate/server/auth"
)

// anyToken marks root fields that need a valid token but no scope.
const anyToken = ""

// rootScopes says which scope each root field needs (DESIGN.md §4). A root field missing here is
// refused, so a new operation cannot go unguarded by accident.
var rootScopes = map[string]string{
	"Query.webhooks":                 auth.ScopeWebhooksRead,
	"Query.webhook":                  auth.ScopeWebhooksRead,
	"Query.webhookStats":             auth.ScopeWebhooksRead,
	"Query.deliveries":               auth.ScopeWebhooksRead,
	"Query.delivery":                 auth.ScopeWebhooksRead,
	"Query.events":                   auth.ScopeEventsSubscribe,
	"Query.event":                    auth.ScopeEventsSubscribe,
	"Query.eventTypes":               anyToken,
	"Query.apiTokens":                auth.ScopeAdmin,
	"Query.viewer":                   anyToken,
	"Query.__schema":                 anyToken,
	"Query.__type":                   anyToken,
	"Query.__typename":               anyToken,
	"Mutation.createWebhook":         auth.ScopeWebhooksWrite,
	"Mutation.updateWebhook":         auth.ScopeWebhooksWrite,
	"Mutation.deleteWebhook":         auth.ScopeWebhooksWrite,
	"Mutation.rotateWebhookSecret":   auth.ScopeWebhooksWrite,
	"Mutation.testWebhook":           auth.ScopeWebhooksWrite,
	"Mutation.redeliver":             auth.ScopeWebhooksWrite,
	"Mutation.retryFailedDeliveries": auth.ScopeWebhooksWrite,
	"Mutation.replayEvents":          auth.ScopeWebhooksWrite,
	"Mutation.publishEvent":          auth.ScopeEventsPublish,
	"Mutation.publishEvents":         auth.ScopeEventsPublish,
	"Mutation.createApiToken":        auth.ScopeAdmin,
	"Mutation.revokeApiToken":        auth.ScopeAdmin,
	"Mutation.__typename":            anyToken,
	"Subscription.events":            auth.ScopeEventsSubscribe,
	"Subscription.deliveryUpdated":   auth.ScopeWebhooksRead,
}

// RequireScopes is a gqlgen field middleware that checks the scope of every root field.
func RequireScopes(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || !isRoot(fc.Object) {
		return next(ctx)
	}
	scope, ok := rootScopes[fc.Object+"."+fc.Field.Name]
	if !ok {
		return nil, apperr.New(apperr.Forbidden, "%s.%s is not available", fc.Object, fc.Field.Name)
	}
	if _, err := auth.Require(ctx, scope); err != nil {
		return nil, err
	}
	return next(ctx)
}

func isRoot(object string) bool {
	return object == "Query" || object == "Mutation" || object == "Subscription"
}
