package events

import (
	"context"
	"encoding/json"
	"sync/atomic"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/graph/scalar"
	"github.com/eventgate/eventgate/server/eventbus"
	"github.com/eventgate/eventgate/server/streamctl"
)

// replayPage is how many stored events a stream reads from the log at a time.
const replayPage = 200

// Stream returns a channel of the events of the given types (nil = all). With after set, it first
// replays every stored event after that position, then follows live events; without, live
// events only. Nothing is skipped or repeated across the switch: the stream subscribes to the
// bus before it reads the log, and drops bus events it has already sent. When the bus drops it
// (its buffer filled), it goes back to the log. buffer bounds the events held for it.
func (s *Service) Stream(ctx context.Context, types []string, after *int64, buffer int) (<-chan *ent.Event, error) {
	var last int64
	if after != nil {
		if err := s.CheckCursor(ctx, *after); err != nil {
			return nil, err
		}
		last = *after
	} else {
		// Live only: start at the head; follow reads anything committed since from the log.
		head, err := s.Head(ctx)
		if err != nil {
			return nil, err
		}
		last = head
	}
	streamctl.Start(ctx, string(scalar.CursorFor(last)))
	out := make(chan *ent.Event)
	go s.follow(ctx, out, types, last, buffer)
	return out, nil
}

// follow feeds out until ctx ends: catch up from the log, then live from the bus.
func (s *Service) follow(ctx context.Context, out chan<- *ent.Event, types []string, last int64, buffer int) {
	defer close(out)
	tracker := streamctl.From(ctx)
	defer tracker.End()
	// The resolver's context is a long chain of values, which Done walks on every call; a
	// context of the stream's own answers Done at once, and every item asks it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	want := func(e *ent.Event) bool { return types == nil || containsString(types, e.Type) }
	send := func(e *ent.Event, replay bool) bool {
		it := streamctl.Item{Cursor: s.cursors.get(int64(e.ID)), Replay: replay, Key: int64(e.ID)}
		// Rendered for another subscriber of the same operation: hand over the bytes only.
		if data, ok := tracker.Rendered(it.Key); ok {
			it.Data = data
			if !tracker.Emit(ctx, it) {
				return false
			}
			last = int64(e.ID)
			return true
		}
		if !tracker.Emit(ctx, it) {
			return false
		}
		select {
		case out <- e:
			last = int64(e.ID)
			return true
		case <-ctx.Done():
			return false
		}
	}
	// History before the stream went live (from `after`) is replay, sent at the client's pace.
	// Catching up after the stream fell behind live events is live traffic: a client that
	// stopped reading must end with SLOW_CONSUMER, not stall in catch-up.
	replay := true
	for {
		sub := s.bus.Subscribe(buffer)
		// Catch up from the log; anything committed after this read is in sub.
		for {
			page, more, err := s.Page(ctx, types, last, replayPage)
			if err != nil {
				sub.Close()
				if ctx.Err() == nil {
					s.log.Error("stream replay", "err", err)
				}
				return
			}
			for _, e := range page {
				if !send(e, replay) {
					sub.Close()
					return
				}
			}
			if !more {
				break
			}
		}
		// Live. The bus delivers in commit order; events at or before last were already sent.
		replay = false
		if !followLive(ctx, sub, func(e *ent.Event) bool {
			if int64(e.ID) <= last || !want(e) {
				return true
			}
			return send(e, false)
		}) {
			sub.Close()
			return
		}
		sub.Close() // fell behind: read the rest from the log
	}
}

// followLive hands every value of sub to handle until handle or ctx says stop (false) or sub
// lags (true: it missed values).
func followLive[T any](ctx context.Context, sub *eventbus.Subscription[T], handle func(T) bool) (lagged bool) {
	done := ctx.Done()
	var batch [32]T
	var zero T
	for {
		for {
			n, lag := sub.NextBatch(batch[:])
			if lag {
				return true
			}
			for i, v := range batch[:n] {
				batch[i] = zero // held no longer than handled
				if !handle(v) {
					return false
				}
			}
			if n < len(batch) {
				break
			}
		}
		select {
		case <-done:
			return false
		case <-sub.Ready():
		}
	}
}

// cursorMemo remembers the cursors of recent events: each live event's cursor is sent by every
// stream, thousands of times, and encoding it is an allocation each.
type cursorMemo struct {
	slots [256]atomic.Pointer[memoCursor]
}

type memoCursor struct {
	id     int64
	cursor string
}

// get returns the cursor of the event with id.
func (m *cursorMemo) get(id int64) string {
	slot := &m.slots[uint64(id)%uint64(len(m.slots))]
	if c := slot.Load(); c != nil && c.id == id {
		return c.cursor
	}
	c := &memoCursor{id, string(scalar.CursorFor(id))}
	slot.Store(c)
	return c.cursor
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// DeliveryUpdates returns a channel of delivery changes that keep passes, live only. A consumer
// that falls more than buffer changes behind is ended (the channel closes).
func (s *Service) DeliveryUpdates(ctx context.Context, keep func(*ent.Delivery) bool, buffer int) <-chan *ent.Delivery {
	sub := s.deliveries.Subscribe(buffer)
	out := make(chan *ent.Delivery)
	streamctl.Start(ctx, "")
	go func() {
		defer close(out)
		defer streamctl.End(ctx)
		defer sub.Close()
		followLive(ctx, sub, func(d *ent.Delivery) bool {
			if !keep(d) {
				return true
			}
			if !streamctl.Emit(ctx, streamctl.Item{}) {
				return false
			}
			select {
			case out <- d:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	return out
}

// PublishDeliveryChanges tells deliveryUpdated subscribers about committed changes — on every
// instance, through NOTIFY, when the database is shared. The notification carries each state
// itself (not an id to read back later), so every status change and attempt is seen even when
// the delivery has moved on by the time another instance relays it.
func (s *Service) PublishDeliveryChanges(ctx context.Context, ds ...*ent.Delivery) {
	if len(ds) == 0 {
		return
	}
	if !s.opts.Shared {
		s.deliveries.Publish(ds...)
		return
	}
	// NOTIFY payloads are limited to 8000 bytes: send states in chunks well under it.
	var chunk []json.RawMessage
	size := 0
	flush := func() {
		if len(chunk) == 0 {
			return
		}
		payload, _ := json.Marshal(chunk)
		if _, err := s.client.ExecContext(ctx, "SELECT pg_notify($1 || current_schema(), $2)", DeliveriesChannel, string(payload)); err != nil {
			s.log.Warn("notify delivery changes", "err", err)
		}
		chunk, size = chunk[:0], 0
	}
	for _, d := range ds {
		state, err := json.Marshal(deliveryState(d))
		if err != nil {
			continue
		}
		if size+len(state) > 7000 {
			flush()
		}
		chunk = append(chunk, state)
		size += len(state) + 1
	}
	flush()
}

// deliveryState is a delivery without its edges or lease, as sent between instances.
func deliveryState(d *ent.Delivery) *ent.Delivery {
	c := *d
	c.Edges = ent.DeliveryEdges{}
	c.ClaimedUntil, c.ClaimedBy = nil, nil
	return &c
}

// DecodeDeliveryStates reads what PublishDeliveryChanges sent.
func DecodeDeliveryStates(payload string) ([]*ent.Delivery, error) {
	var ds []*ent.Delivery
	err := json.Unmarshal([]byte(payload), &ds)
	return ds, err
}
