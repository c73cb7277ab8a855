// Package substreamtest runs eventgate's real generated GraphQL executor over a small
// in-memory event source, for the tests of the streaming transports. The source behaves like
// the real subscription resolver towards the transport: it reports each item's cursor and
// whether it is replay through server/streamctl before handing the item to gqlgen, replays
// stored events after the `after` cursor at the client's pace, then delivers live events.
package substreamtest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/graph/generated"
	"github.com/eventgate/eventgate/graph/model"
	"github.com/eventgate/eventgate/graph/scalar"
	"github.com/eventgate/eventgate/server/streamctl"
)

// Type values with a special meaning to the source's subscription resolver.
const (
	// TypeForbidden in `types` makes the resolver refuse with FORBIDDEN.
	TypeForbidden = "forbidden.type"
)

// Source is the event source behind the test executor. Its methods are safe for concurrent use.
type Source struct {
	// ExpiredCursor, when set, is a cursor the resolver answers with CURSOR_EXPIRED.
	ExpiredCursor scalar.Cursor

	mu       sync.Mutex
	stored   []*ent.Event // history for replay, in log order
	seq      int
	subs     map[*subscriber]struct{}
	changed  chan struct{} // closed and replaced whenever subs changes
	canceled int           // subscriptions whose context ended
}

type subscriber struct {
	types []string
	in    chan *ent.Event
	done  chan struct{} // closed when the resolver's goroutine ends
}

type principalKey struct{}

// WithPrincipal returns ctx carrying the name `viewer` reports, as an authentication hook would.
func WithPrincipal(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, principalKey{}, name)
}

// Principal returns the name WithPrincipal put in ctx, "" when none.
func Principal(ctx context.Context) string {
	name, _ := ctx.Value(principalKey{}).(string)
	return name
}

// NewExecutor returns the generated executor wired to a new Source.
func NewExecutor() (*Source, graphql.GraphExecutor) {
	s := &Source{subs: make(map[*subscriber]struct{}), changed: make(chan struct{})}
	es := generated.NewExecutableSchema(generated.Config{Resolvers: &root{s: s}})
	return s, executor.New(es)
}

// Event makes the next event of the log (type "test.event", payload {"n":…,"pad":pad}),
// without publishing it.
func (s *Source) Event(pad int) *ent.Event {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	payload, _ := json.Marshal(map[string]any{"n": n, "pad": string(make([]byte, pad))})
	return &ent.Event{
		ID:         n,
		EventID:    fmt.Sprintf("ev-%d", n),
		Type:       "test.event",
		Payload:    payload,
		OccurredAt: time.Unix(int64(n), 0).UTC(),
		ReceivedAt: time.Unix(int64(n), 0).UTC(),
	}
}

// Store appends events to the history that subscriptions with `after` replay.
func (s *Source) Store(evs ...*ent.Event) {
	s.mu.Lock()
	s.stored = append(s.stored, evs...)
	s.mu.Unlock()
}

// Publish hands ev to every live subscriber whose types match, blocking until each one's
// resolver took it (as a synchronous bus would), the subscription ended, or ctx ends.
func (s *Source) Publish(ctx context.Context, ev *ent.Event) error {
	s.mu.Lock()
	subs := make([]*subscriber, 0, len(s.subs))
	for sub := range s.subs {
		if len(sub.types) == 0 || slices.Contains(sub.types, ev.Type) {
			subs = append(subs, sub)
		}
	}
	s.mu.Unlock()
	for _, sub := range subs {
		select {
		case sub.in <- ev:
		case <-sub.done:
		case <-ctx.Done():
			return fmt.Errorf("publish event %d: %w", ev.ID, ctx.Err())
		}
	}
	return nil
}

// WaitSubscribers waits until exactly n subscriptions are live.
func (s *Source) WaitSubscribers(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, changed := len(s.subs), s.changed
		s.mu.Unlock()
		if got == n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("got %d live subscriptions, want %d: %w", got, n, ctx.Err())
		}
	}
}

// Canceled returns how many subscriptions saw their context end.
func (s *Source) Canceled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.canceled
}

func (s *Source) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// subscribe is the Subscription.events resolver.
func (s *Source) subscribe(ctx context.Context, types []string, after *scalar.Cursor) (<-chan *ent.Event, error) {
	if slices.Contains(types, TypeForbidden) {
		return nil, codeError("FORBIDDEN", "missing scope EVENTS_SUBSCRIBE")
	}
	var from int64
	start := ""
	if after != nil {
		if s.ExpiredCursor != "" && *after == s.ExpiredCursor {
			return nil, codeError("CURSOR_EXPIRED", "cursor older than retention")
		}
		pos, err := after.Position()
		if err != nil {
			return nil, err
		}
		from, start = pos, string(*after)
	}
	streamctl.Start(ctx, start)

	sub := &subscriber{types: types, in: make(chan *ent.Event), done: make(chan struct{})}
	s.mu.Lock()
	var replay []*ent.Event
	if after != nil {
		for _, ev := range s.stored {
			if int64(ev.ID) > from {
				replay = append(replay, ev)
			}
		}
	}
	s.subs[sub] = struct{}{}
	s.notifyLocked()
	s.mu.Unlock()

	out := make(chan *ent.Event)
	go func() {
		defer func() {
			close(sub.done)
			s.mu.Lock()
			delete(s.subs, sub)
			s.canceled++
			s.notifyLocked()
			s.mu.Unlock()
		}()
		defer streamctl.End(ctx)
		emit := func(ev *ent.Event, replay bool) bool {
			if !streamctl.Emit(ctx, streamctl.Item{Cursor: string(scalar.CursorFor(int64(ev.ID))), Replay: replay}) {
				return false
			}
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for _, ev := range replay {
			if !emit(ev, true) {
				return
			}
		}
		for {
			select {
			case ev := <-sub.in:
				if !emit(ev, false) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func codeError(code, msg string) error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
}

// root is the resolver root: only what the transports' tests select is implemented; the
// embedded nil interface makes anything else panic, which gqlgen reports as an error.
type root struct {
	generated.ResolverRoot
	s *Source
}

func (r *root) Subscription() generated.SubscriptionResolver { return subscriptionResolver{r.s} }
func (r *root) Query() generated.QueryResolver               { return queryResolver{s: r.s} }
func (r *root) Mutation() generated.MutationResolver         { return mutationResolver{s: r.s} }
func (r *root) Event() generated.EventResolver               { return eventResolver{} }

type subscriptionResolver struct {
	s *Source
}

func (r subscriptionResolver) Events(ctx context.Context, types []string, after *scalar.Cursor) (<-chan *ent.Event, error) {
	return r.s.subscribe(ctx, types, after)
}

func (r subscriptionResolver) DeliveryUpdated(ctx context.Context, _ *string) (<-chan *ent.Delivery, error) {
	return nil, codeError("FORBIDDEN", "not in the test source")
}

type queryResolver struct {
	generated.QueryResolver
	s *Source
}

// Viewer reports the principal in the operation's context as the token's name, which shows
// the context an operation runs in.
func (r queryResolver) Viewer(ctx context.Context) (*ent.ApiToken, error) {
	return &ent.ApiToken{ID: 1, Name: Principal(ctx)}, nil
}

type mutationResolver struct {
	generated.MutationResolver
	s *Source
}

// PublishEvent publishes a live event with the given payload.
func (r mutationResolver) PublishEvent(ctx context.Context, input model.PublishEventInput) (*ent.Event, error) {
	ev := r.s.Event(0)
	ev.Type, ev.Payload = input.Type, input.Payload
	if err := r.s.Publish(ctx, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

type eventResolver struct{}

func (eventResolver) Cursor(_ context.Context, obj *ent.Event) (scalar.Cursor, error) {
	return scalar.CursorFor(int64(obj.ID)), nil
}

func (eventResolver) Payload(_ context.Context, obj *ent.Event) (json.RawMessage, error) {
	return obj.Payload, nil
}

func (eventResolver) Data(context.Context, *ent.Event) (model.EventData, error) {
	return nil, nil
}
