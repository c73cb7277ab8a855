package webhooks

import (
	"context"
	"fmt"
	"time"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/delivery"
	"github.com/eventgate/eventgate/ent/deliveryattempt"
	"github.com/eventgate/eventgate/ent/event"
	"github.com/eventgate/eventgate/server/apperr"
)

// SetDeliveryListener sets the function told about deliveries created or made due again (it
// publishes them to deliveryUpdated and wakes the dispatcher).
func (s *Service) SetDeliveryListener(f func([]*ent.Delivery)) { s.onDeliveries = f }

// SetActivatedListener sets the function told when a webhook is (re-)enabled: its waiting
// deliveries are due again.
func (s *Service) SetActivatedListener(f func()) { s.onActivated = f }

// SetChangedListener sets the function told, after the commit, that a webhook was updated, had
// its secret rotated or was deleted.
func (s *Service) SetChangedListener(f func(id int)) { s.onChanged = f }

func (s *Service) changed(id int) {
	if s.onChanged != nil {
		s.onChanged(id)
	}
}

func (s *Service) told(ds []*ent.Delivery) {
	if s.onDeliveries != nil && len(ds) > 0 {
		s.onDeliveries(ds)
	}
}

// Redeliver creates a new delivery of a delivery's event to the same webhook.
func (s *Service) Redeliver(ctx context.Context, deliveryID int) (*ent.Delivery, error) {
	d, err := s.client.Delivery.Get(ctx, deliveryID)
	if ent.IsNotFound(err) {
		return nil, apperr.New(apperr.NotFound, "no delivery with id %d", deliveryID)
	}
	if err != nil {
		return nil, fmt.Errorf("redeliver: %w", err)
	}
	now := s.now()
	nd, err := s.client.Delivery.Create().SetWebhookID(d.WebhookID).SetEventID(d.EventID).
		SetEventType(d.EventType).SetNextAttemptAt(now).SetCreatedAt(now).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("redeliver: %w", err)
	}
	s.told([]*ent.Delivery{nd})
	return nd, nil
}

// RetryFailed makes a webhook's FAILED deliveries (created since the given time) PENDING and due
// now; attempt numbering continues. It returns how many.
func (s *Service) RetryFailed(ctx context.Context, webhookID int, since *time.Time) (int, error) {
	if _, err := s.mustExist(ctx, webhookID); err != nil {
		return 0, err
	}
	now := s.now()
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return 0, fmt.Errorf("retry failed: %w", err)
	}
	defer tx.Rollback()
	q := tx.Delivery.Query().Where(delivery.WebhookID(webhookID), delivery.StatusEQ(delivery.StatusFAILED))
	if since != nil {
		q.Where(delivery.CreatedAtGTE(since.UTC()))
	}
	ids, err := q.IDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("retry failed: %w", err)
	}
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		if err := tx.Delivery.Update().Where(delivery.IDIn(chunk...)).
			SetStatus(delivery.StatusPENDING).SetNextAttemptAt(now).ClearClaimedUntil().ClearClaimedBy().
			Exec(ctx); err != nil {
			return 0, fmt.Errorf("retry failed: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("retry failed: %w", err)
	}
	if len(ids) > 0 {
		ds, err := s.client.Delivery.Query().Where(delivery.IDIn(ids...)).All(ctx)
		if err == nil {
			s.told(ds)
		}
	}
	return len(ids), nil
}

// Replay creates a new delivery to a webhook of every stored event of its types that occurred in
// [since, until). It returns how many.
func (s *Service) Replay(ctx context.Context, webhookID int, since time.Time, until *time.Time) (int, error) {
	w, err := s.mustExist(ctx, webhookID)
	if err != nil {
		return 0, err
	}
	if until != nil && !until.After(since) {
		return 0, apperr.BadInput("until", "must be after since")
	}
	q := s.client.Event.Query().Where(event.TypeIn(w.EventTypes...), event.OccurredAtGTE(since.UTC()))
	if until != nil {
		q.Where(event.OccurredAtLT(until.UTC()))
	}
	evs, err := q.Order(ent.Asc(event.FieldID)).Select(event.FieldID, event.FieldType).All(ctx)
	if err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	now := s.now()
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	defer tx.Rollback()
	var created []*ent.Delivery
	for start := 0; start < len(evs); start += 1000 {
		chunk := evs[start:min(start+1000, len(evs))]
		builders := make([]*ent.DeliveryCreate, len(chunk))
		for i, e := range chunk {
			builders[i] = tx.Delivery.Create().SetWebhookID(webhookID).SetEventID(e.ID).
				SetEventType(e.Type).SetNextAttemptAt(now).SetCreatedAt(now)
		}
		ds, err := tx.Delivery.CreateBulk(builders...).Save(ctx)
		if err != nil {
			return 0, fmt.Errorf("replay: %w", err)
		}
		created = append(created, ds...)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	for _, d := range created {
		d.Unwrap()
	}
	s.told(created)
	return len(created), nil
}

// Attempts returns a delivery's attempts, oldest first.
func (s *Service) Attempts(ctx context.Context, d *ent.Delivery) ([]*ent.DeliveryAttempt, error) {
	as, err := s.client.DeliveryAttempt.Query().Where(deliveryattempt.DeliveryID(d.ID)).
		Order(ent.Asc(deliveryattempt.FieldNumber), ent.Asc(deliveryattempt.FieldID)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("attempts: %w", err)
	}
	return as, nil
}

func (s *Service) mustExist(ctx context.Context, id int) (*ent.Webhook, error) {
	w, err := s.client.Webhook.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("get webhook: %w", err)
	}
	return w, nil
}
