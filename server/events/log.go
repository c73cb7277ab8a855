package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/delivery"
	"github.com/eventgate/eventgate/ent/event"
	"github.com/eventgate/eventgate/ent/setting"
	"github.com/eventgate/eventgate/server/apperr"
)

// horizonKey names the setting that holds the highest log position retention has deleted: a
// cursor below it may have lost events and is expired.
const horizonKey = "retention_horizon"

// Get returns the event with a public id, or nil.
func (s *Service) Get(ctx context.Context, eventID string) (*ent.Event, error) {
	e, err := s.client.Event.Query().Where(event.EventID(eventID)).Only(ctx)
	if ent.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get event: %w", err)
	}
	return e, nil
}

// Page returns up to first events after position after, of the given types (nil = all), in log
// order, and whether more follow.
func (s *Service) Page(ctx context.Context, types []string, after int64, first int) ([]*ent.Event, bool, error) {
	q := s.client.Event.Query().Where(event.IDGT(int(after)))
	if types != nil {
		q.Where(event.TypeIn(types...))
	}
	items, err := q.Order(ent.Asc(event.FieldID)).Limit(first + 1).All(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("page events: %w", err)
	}
	if len(items) > first {
		return items[:first], true, nil
	}
	return items, false, nil
}

// Head returns the log position of the newest event (0 for an empty log).
func (s *Service) Head(ctx context.Context) (int64, error) {
	id, err := s.client.Event.Query().Order(ent.Desc(event.FieldID)).FirstID(ctx)
	if ent.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("log head: %w", err)
	}
	return int64(id), nil
}

// CheckCursor refuses a client's position older than what retention has kept (CURSOR_EXPIRED).
func (s *Service) CheckCursor(ctx context.Context, after int64) error {
	horizon, err := s.horizon(ctx)
	if err != nil {
		return err
	}
	if after < horizon {
		return apperr.New(apperr.CursorExpired, "the cursor points before the retained log; start again without after")
	}
	return nil
}

func (s *Service) horizon(ctx context.Context) (int64, error) {
	v, err := s.client.Setting.Query().Where(setting.Key(horizonKey)).Only(ctx)
	if ent.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read retention horizon: %w", err)
	}
	return strconv.ParseInt(v.Value, 10, 64)
}

// Prune deletes events older than the retention period with their deliveries, except events
// that still have a PENDING delivery. It returns how many events it deleted.
func (s *Service) Prune(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-s.opts.Retention)
	tx, err := s.client.Tx(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	defer tx.Rollback()
	ids, err := tx.Event.Query().
		Where(event.ReceivedAtLT(cutoff), event.Not(event.HasDeliveriesWith(delivery.StatusEQ(delivery.StatusPENDING)))).
		IDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	maxID := 0
	for _, id := range ids {
		maxID = max(maxID, id)
	}
	for start := 0; start < len(ids); start += bulkRows {
		if _, err := tx.Event.Delete().Where(event.IDIn(ids[start:min(start+bulkRows, len(ids))]...)).Exec(ctx); err != nil {
			return 0, fmt.Errorf("prune: %w", err)
		}
	}
	old, err := tx.Setting.Query().Where(setting.Key(horizonKey)).Only(ctx)
	switch {
	case ent.IsNotFound(err):
		err = tx.Setting.Create().SetKey(horizonKey).SetValue(strconv.Itoa(maxID)).Exec(ctx)
	case err == nil:
		if prev, _ := strconv.Atoi(old.Value); maxID > prev {
			err = tx.Setting.UpdateOne(old).SetValue(strconv.Itoa(maxID)).Exec(ctx)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("prune: record horizon: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	return len(ids), nil
}

// RunRetention prunes every interval until ctx ends.
func (s *Service) RunRetention(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Prune(ctx); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("retention", "err", err)
		} else if n > 0 {
			s.log.Info("retention deleted events", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
