package webhooks

import (
	"context"
	"fmt"
	"time"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/delivery"
	"github.com/eventgate/eventgate/ent/deliveryattempt"
	"github.com/eventgate/eventgate/ent/predicate"
	"github.com/eventgate/eventgate/ent/webhook"
)

// Stats are delivery statistics (GraphQL type WebhookStats). Counts are deliveries, not attempts.
type Stats struct {
	TotalWebhooks        int
	ActiveWebhooks       int
	TotalDeliveries      int
	SuccessfulDeliveries int
	FailedDeliveries     int
	PendingDeliveries    int
	// SuccessRate is 100 × successful ÷ (successful + failed), two decimals, 0 with none finished.
	SuccessRate  float64
	P50LatencyMs *float64
	P99LatencyMs *float64
}

// Stats computes statistics over every webhook, or one when webhookID is set, counting
// deliveries created since the given time when it is set.
func (s *Service) Stats(ctx context.Context, webhookID *int, since *time.Time) (*Stats, error) {
	var st Stats
	wq := s.client.Webhook.Query()
	var where []predicate.Delivery
	if webhookID != nil {
		wq.Where(webhook.ID(*webhookID))
		where = append(where, delivery.WebhookID(*webhookID))
	}
	if since != nil {
		where = append(where, delivery.CreatedAtGTE(since.UTC()))
	}
	var err error
	if st.TotalWebhooks, err = wq.Clone().Count(ctx); err != nil {
		return nil, fmt.Errorf("count webhooks: %w", err)
	}
	if st.ActiveWebhooks, err = wq.Where(webhook.IsActive(true)).Count(ctx); err != nil {
		return nil, fmt.Errorf("count webhooks: %w", err)
	}
	var groups []struct {
		Status delivery.Status `json:"status"`
		Count  int             `json:"count"`
	}
	if err := s.client.Delivery.Query().Where(where...).GroupBy(delivery.FieldStatus).
		Aggregate(ent.Count()).Scan(ctx, &groups); err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	for _, g := range groups {
		st.TotalDeliveries += g.Count
		switch g.Status {
		case delivery.StatusSUCCESS:
			st.SuccessfulDeliveries = g.Count
		case delivery.StatusFAILED:
			st.FailedDeliveries = g.Count
		case delivery.StatusPENDING:
			st.PendingDeliveries = g.Count
		}
	}
	st.SuccessRate = SuccessRate(st.SuccessfulDeliveries, st.FailedDeliveries)

	attempts := s.client.DeliveryAttempt.Query()
	if len(where) > 0 {
		attempts.Where(deliveryattempt.HasDeliveryWith(where...))
	}
	n, err := attempts.Clone().Count(ctx)
	if err != nil {
		return nil, fmt.Errorf("count attempts: %w", err)
	}
	if n > 0 {
		if st.P50LatencyMs, err = percentile(ctx, attempts, n, 0.50); err != nil {
			return nil, err
		}
		if st.P99LatencyMs, err = percentile(ctx, attempts, n, 0.99); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

// SuccessRate is 100 × successful ÷ (successful + failed), rounded to two decimals; 0 when both are 0.
func SuccessRate(successful, failed int) float64 {
	if successful+failed == 0 {
		return 0
	}
	return round2(100 * float64(successful) / float64(successful+failed))
}

// percentile returns the nearest-rank percentile p of attempt durations among n attempts.
func percentile(ctx context.Context, q *ent.DeliveryAttemptQuery, n int, p float64) (*float64, error) {
	rank := int(p*float64(n)+0.999999) - 1 // ceil(p·n) − 1, zero-based
	rank = max(0, min(rank, n-1))
	ms, err := q.Clone().Order(ent.Asc(deliveryattempt.FieldDurationMs)).Offset(rank).Limit(1).
		Select(deliveryattempt.FieldDurationMs).Int(ctx)
	if err != nil {
		return nil, fmt.Errorf("attempt latency: %w", err)
	}
	v := float64(ms)
	return &v, nil
}

// DeliveryFilter selects deliveries.
type DeliveryFilter struct {
	WebhookID     *int
	Status        *string
	EventType     *string
	Since, Until  *time.Time
	Limit, Offset int
	// EventTypes, when not nil, limits the result to these types (a token's visibility).
	EventTypes []string
}

// Deliveries returns a page of deliveries, newest first, and the total matching the filter.
func (s *Service) Deliveries(ctx context.Context, f DeliveryFilter) ([]*ent.Delivery, int, error) {
	q := s.client.Delivery.Query()
	if f.WebhookID != nil {
		q.Where(delivery.WebhookID(*f.WebhookID))
	}
	if f.Status != nil {
		q.Where(delivery.StatusEQ(delivery.Status(*f.Status)))
	}
	if f.EventType != nil {
		q.Where(delivery.EventType(*f.EventType))
	}
	if f.EventTypes != nil {
		q.Where(delivery.EventTypeIn(f.EventTypes...))
	}
	if f.Since != nil {
		q.Where(delivery.CreatedAtGTE(f.Since.UTC()))
	}
	if f.Until != nil {
		q.Where(delivery.CreatedAtLT(f.Until.UTC()))
	}
	total, err := q.Clone().Count(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("count deliveries: %w", err)
	}
	items, err := q.Order(ent.Desc(delivery.FieldCreatedAt), ent.Desc(delivery.FieldID)).Limit(f.Limit).Offset(f.Offset).All(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("list deliveries: %w", err)
	}
	return items, total, nil
}
