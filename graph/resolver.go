// Package graph holds eventgate's GraphQL resolvers. Their bodies stay thin: check scope and
// visibility, call the domain packages, map the result. Scope checks of root fields live in one
// table (scopes.go) applied by a field middleware, so no operation can forget one.
package graph

import (
	"log/slog"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/server/auth"
	"github.com/eventgate/eventgate/server/events"
	"github.com/eventgate/eventgate/server/webhooks"
)

// Resolver is the dependency root of the resolvers.
type Resolver struct {
	Client         *ent.Client
	Auth           *auth.Service
	WebhookService *webhooks.Service
	EventService   *events.Service
	Log            *slog.Logger
	// SubscriptionBuffer bounds the events held for one subscription.
	SubscriptionBuffer int
}
