// Package pgnotify relays commits between eventgate instances that share a PostgreSQL database.
// Each instance keeps one dedicated connection that LISTENs for the notifications ingest and the
// dispatcher send at commit; on each one (and on a slow timer, and after every reconnect) it reads
// the log after the last event it relayed and publishes those events, in log order, to the
// instance's bus. Because the bus is fed from the log, a dropped connection loses nothing: the
// relay catches up when it is back.
package pgnotify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/event"
	"github.com/eventgate/eventgate/server/eventbus"
	"github.com/eventgate/eventgate/server/events"
)

// Tuning of the relay.
const (
	// pollEvery is the safety net: the log is read this often even without notifications.
	pollEvery  = time.Second
	batchSize  = 1000
	maxBackoff = 2 * time.Second
)

// Relay feeds an instance's buses from the shared database.
type Relay struct {
	url        string
	client     *ent.Client
	events     *eventbus.Bus[*ent.Event]
	deliveries *eventbus.Bus[*ent.Delivery]
	wake       func()
	log        *slog.Logger
	last       int64
	// connected is told each time the listener connection is (re)established; tests use it.
	connected func(pid uint32)
}

// New makes a Relay. wake nudges the local dispatcher.
func New(url string, client *ent.Client, evs *eventbus.Bus[*ent.Event], ds *eventbus.Bus[*ent.Delivery], wake func(), log *slog.Logger) *Relay {
	return &Relay{url: url, client: client, events: evs, deliveries: ds, wake: wake, log: log.With("component", "pgnotify")}
}

// OnConnect sets a function told the backend pid of each new listener connection.
func (r *Relay) OnConnect(f func(pid uint32)) { r.connected = f }

// Start reads the current head of the log, so only events committed from now on are relayed
// (streams read older ones from the log themselves).
func (r *Relay) Start(ctx context.Context) error {
	id, err := r.client.Event.Query().Order(ent.Desc(event.FieldID)).FirstID(ctx)
	if err != nil && !ent.IsNotFound(err) {
		return fmt.Errorf("relay start: %w", err)
	}
	r.last = int64(id)
	return nil
}

// Run listens until ctx ends, reconnecting with backoff.
func (r *Relay) Run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := r.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("notification connection lost; reconnecting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (r *Relay) listen(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, r.url)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var schema string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return fmt.Errorf("current schema: %w", err)
	}
	evChan, dChan := events.EventsChannel+schema, events.DeliveriesChannel+schema
	for _, ch := range []string{evChan, dChan} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	if r.connected != nil {
		r.connected(conn.PgConn().PID())
	}
	// Anything committed while we were not listening is in the log.
	if err := r.catchUp(ctx); err != nil {
		return err
	}
	for {
		waitCtx, cancel := context.WithTimeout(ctx, pollEvery)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil && n.Channel == dChan:
			r.relayDeliveries(n.Payload)
			r.wake()
		case err == nil:
			if err := r.catchUp(ctx); err != nil {
				return err
			}
			r.wake()
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			if err := r.catchUp(ctx); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// catchUp publishes, in log order, every event after the last one relayed.
func (r *Relay) catchUp(ctx context.Context) error {
	for {
		evs, err := r.client.Event.Query().Where(event.IDGT(int(r.last))).Order(ent.Asc(event.FieldID)).Limit(batchSize).All(ctx)
		if err != nil {
			return fmt.Errorf("read log: %w", err)
		}
		if len(evs) == 0 {
			return nil
		}
		r.events.Publish(evs...)
		r.last = int64(evs[len(evs)-1].ID)
		if len(evs) < batchSize {
			return nil
		}
	}
}

func (r *Relay) relayDeliveries(payload string) {
	ds, err := events.DecodeDeliveryStates(payload)
	if err != nil {
		r.log.Warn("decode delivery changes", "err", err)
		return
	}
	r.deliveries.Publish(ds...)
}
