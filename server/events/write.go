package events

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/event"
	"github.com/eventgate/eventgate/ent/webhook"
	"github.com/eventgate/eventgate/server/apperr"
)

// maxGroup bounds how many publish calls share one transaction.
const maxGroup = 256

// groupCommit lets concurrent publishes share a transaction, so with synchronous=FULL one fsync
// covers many acknowledged events. There is no background writer: the first caller to find no
// write in progress becomes the leader and commits everything queued, round after round, until
// the queue is empty; the others wait for their answer.
type groupCommit struct {
	mu      sync.Mutex
	writing bool
	queue   []*writeReq
}

// writeReq is one publish call waiting to be written.
type writeReq struct {
	ctx    context.Context
	preps  []prepared
	target *int
	done   chan struct{}
	// Results, set before done is closed.
	out        []*ent.Event
	fresh      []*ent.Event
	deliveries []*ent.Delivery
	err        error
}

// commit stores one publish call (in a transaction shared with concurrent calls) and then, in
// commit order, tells the bus, the metrics and the dispatcher.
func (s *Service) commit(ctx context.Context, preps []prepared, target *int) ([]*ent.Event, []*ent.Event, []*ent.Delivery, error) {
	req := &writeReq{ctx: ctx, preps: preps, target: target, done: make(chan struct{})}
	g := &s.writes
	g.mu.Lock()
	g.queue = append(g.queue, req)
	lead := !g.writing
	g.writing = true
	g.mu.Unlock()
	if lead {
		for {
			g.mu.Lock()
			n := min(len(g.queue), maxGroup)
			batch := g.queue[:n:n]
			g.queue = g.queue[n:]
			if n == 0 {
				g.writing = false
				g.mu.Unlock()
				break
			}
			g.mu.Unlock()
			s.writeGroup(batch)
		}
	}
	<-req.done
	return req.out, req.fresh, req.deliveries, req.err
}

// writeGroup commits a group of publish calls in one transaction. A refused call (a reused id) is
// refused before it writes anything (plan), so it fails alone; a failed write or commit fails
// them all.
// The bus learns of the events while no other group can commit, so bus order is commit order.
func (s *Service) writeGroup(group []*writeReq) {
	// The leader's context must not cancel the others' writes.
	ctx := context.Background()
	finish := func(err error) {
		for _, r := range group {
			if err != nil && r.err == nil {
				r.err, r.out, r.fresh, r.deliveries = err, nil, nil, nil
			}
			close(r.done)
		}
	}
	live := group[:0:0]
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		finish(nil)
		return
	}
	tx, err := s.client.Tx(ctx)
	if err != nil {
		finish(fmt.Errorf("begin publish: %w", err))
		return
	}
	defer tx.Rollback()
	if s.opts.Shared {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext('eventgate:ingest:' || current_schema()))"); err != nil {
			finish(fmt.Errorf("ingest lock: %w", err))
			return
		}
	}
	active, err := tx.Webhook.Query().Where(webhook.IsActive(true)).Select(webhook.FieldID, webhook.FieldEventTypes).All(ctx)
	if err != nil {
		finish(fmt.Errorf("load webhooks: %w", err))
		return
	}
	var lastID int
	for _, r := range live {
		hooks, known, err := s.plan(ctx, tx, r, active)
		if err != nil {
			r.err = err // refused before any of its rows were written
			continue
		}
		if err := s.insert(ctx, tx, r, hooks, known); err != nil {
			// A failed write leaves the transaction's state unknown: nothing of the group commits.
			finish(err)
			return
		}
		if len(r.fresh) > 0 {
			lastID = r.fresh[len(r.fresh)-1].ID
		}
	}
	if s.opts.Shared && lastID > 0 {
		// Delivered to listeners at commit, after the rows are visible.
		if _, err := tx.ExecContext(ctx, "SELECT pg_notify($1 || current_schema(), $2)", EventsChannel, strconv.Itoa(lastID)); err != nil {
			finish(fmt.Errorf("notify: %w", err))
			return
		}
	}
	if err := tx.Commit(); err != nil {
		finish(fmt.Errorf("commit publish: %w", err))
		return
	}
	var fresh []*ent.Event
	var deliveries []*ent.Delivery
	for _, r := range live {
		// Entities made in a transaction query through it; detach them for use after the commit.
		for _, e := range r.out {
			e.Unwrap()
		}
		for _, d := range r.deliveries {
			d.Unwrap()
		}
		fresh = append(fresh, r.fresh...)
		deliveries = append(deliveries, r.deliveries...)
	}
	if !s.opts.Shared && len(fresh) > 0 {
		s.bus.Publish(fresh...)
	}
	if s.opts.OnStored != nil {
		for _, e := range fresh {
			s.opts.OnStored(e)
		}
	}
	if len(deliveries) > 0 {
		s.PublishDeliveryChanges(ctx, deliveries...)
		s.wake()
	}
	finish(nil)
}

// plan decides what one publish call writes, reading only: the stored events it repeats and the
// webhooks it goes to. Every refusal (an id reused with another type or payload, also within the
// call; an unknown target webhook) is found here, before any of the call's rows are written, so a
// refused call needs no savepoint to undo it — savepoints made SQLite copy every page the call
// touched.
func (s *Service) plan(ctx context.Context, tx *ent.Tx, r *writeReq, active []*ent.Webhook) ([]*ent.Webhook, map[string]*ent.Event, error) {
	ids := make([]string, len(r.preps))
	for i, p := range r.preps {
		ids[i] = p.id
	}
	existing, err := tx.Event.Query().Where(event.EventIDIn(ids...)).All(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("look up event ids: %w", err)
	}
	known := make(map[string]*ent.Event, len(existing))
	for _, e := range existing {
		known[e.EventID] = e
	}
	hooks := active
	if r.target != nil {
		if hooks, err = tx.Webhook.Query().Where(webhook.ID(*r.target)).Select(webhook.FieldID).All(ctx); err != nil {
			return nil, nil, fmt.Errorf("load webhook: %w", err)
		}
		if len(hooks) == 0 {
			return nil, nil, apperr.New(apperr.NotFound, "no webhook with id %d", *r.target)
		}
	}
	first := make(map[string]prepared, len(r.preps)) // the new ids of the call
	for _, p := range r.preps {
		stored, isStored := known[p.id]
		q, isNew := first[p.id]
		switch {
		case isStored && (stored.Type != p.Type || stored.PayloadHash != p.hash),
			isNew && (q.Type != p.Type || q.hash != p.hash):
			return nil, nil, apperr.BadInput(p.field+"id", "event id %q was already used with a different type or payload", p.id)
		case !isStored && !isNew:
			first[p.id] = p
		}
	}
	return hooks, known, nil
}

// insert writes one planned publish call: the new events, each with one delivery per subscribed
// webhook (or only to the target webhook); repeated ids are answered with the stored events.
func (s *Service) insert(ctx context.Context, tx *ent.Tx, r *writeReq, hooks []*ent.Webhook, known map[string]*ent.Event) error {
	now := s.now()
	r.out = make([]*ent.Event, len(r.preps))
	var creates []*ent.DeliveryCreate
	for i, p := range r.preps {
		if e, ok := known[p.id]; ok {
			r.out[i] = e
			continue
		}
		occurred := now
		if p.OccurredAt != nil {
			occurred = p.OccurredAt.UTC()
		}
		e, err := tx.Event.Create().SetEventID(p.id).SetType(p.Type).SetPayload(p.payload).
			SetPayloadHash(p.hash).SetOccurredAt(occurred).SetReceivedAt(now).Save(ctx)
		if err != nil {
			return fmt.Errorf("insert event: %w", err)
		}
		known[p.id] = e
		r.out[i] = e
		r.fresh = append(r.fresh, e)
		for _, h := range hooks {
			if r.target != nil || slices.Contains(h.EventTypes, p.Type) {
				creates = append(creates, tx.Delivery.Create().SetWebhookID(h.ID).SetEventID(e.ID).
					SetEventType(p.Type).SetNextAttemptAt(now).SetCreatedAt(now))
			}
		}
	}
	for start := 0; start < len(creates); start += bulkRows {
		// Chunks keep each INSERT under SQLite's limit on bound parameters.
		chunk, err := tx.Delivery.CreateBulk(creates[start:min(start+bulkRows, len(creates))]...).Save(ctx)
		if err != nil {
			return fmt.Errorf("insert deliveries: %w", err)
		}
		r.deliveries = append(r.deliveries, chunk...)
	}
	return nil
}
