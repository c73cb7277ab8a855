package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/delivery"
	"github.com/eventgate/eventgate/ent/deliveryattempt"
	"github.com/eventgate/eventgate/ent/predicate"
	"github.com/eventgate/eventgate/ent/webhook"
)

// recorded is what a committed batch changed, for the hooks and the coordinator.
type recorded struct {
	changed  []*ent.Delivery
	disabled []disabling
	retries  []time.Time
}

type disabling struct {
	webhook *ent.Webhook
	reason  string
}

// webhookAgg sums one batch's outcomes for one webhook, in the order they finished, so that the
// webhook row is updated once per batch and atomically in SQL (several instances may update it).
type webhookAgg struct {
	successes, failures int64 // deliveries that ended SUCCESS / FAILED
	lastTriggered       time.Time
	// reset says a success came in this batch: the failure state restarts after it.
	reset bool
	// failedAfter counts the deliveries that ended FAILED after the last success (or in all
	// of the batch without one); firstFailAfter is the first failed attempt after it.
	failedAfter    int
	firstFailAfter time.Time
	failedAttempt  bool
	gone           bool // a 410 Gone
}

// record commits a batch of results and calls the hooks. When the freed capacity is worth a
// claim, the claim goes into the same transaction (a commit waits for the disk, and one commit
// instead of two per round took a third of the commits); record then says it claimed.
func (d *Dispatcher) record(batch []result) (claimed bool) {
	now := time.Now().UTC()
	d.unbook(batch)
	claimed = d.quitCtx.Err() == nil && d.wantsClaim()
	rec, err := d.commit(d.dbCtx, batch, now, false, claimed)
	if err != nil && claimed {
		// Whatever failed, the outcomes must not wait for a claim: again without it.
		d.abandonClaims()
		claimed = false
		rec, err = d.commit(d.dbCtx, batch, now, false, false)
	}
	if errors.Is(err, errClaimLost) {
		// Some claim is no longer ours: look at each row first.
		rec, err = d.commit(d.dbCtx, batch, now, true, false)
	}
	if err != nil && len(batch) > 1 {
		// One bad outcome (say a row deleted meanwhile on PostgreSQL) must not lose the others.
		rec = recorded{}
		for _, r := range batch {
			one, err := d.commit(d.dbCtx, []result{r}, now, true, false)
			if err != nil {
				// A deleted delivery or a claim lost just now leaves nothing to record.
				if !ent.IsConstraintError(err) && !errors.Is(err, errClaimLost) {
					d.logDBError("record delivery attempt", err)
				}
				continue
			}
			rec.changed = append(rec.changed, one.changed...)
			rec.disabled = append(rec.disabled, one.disabled...)
			rec.retries = append(rec.retries, one.retries...)
		}
	} else if err != nil && !ent.IsConstraintError(err) && !errors.Is(err, errClaimLost) {
		d.logDBError("record delivery attempt", err)
	}
	d.launchClaims()

	for _, t := range rec.retries {
		d.noteDue(t)
	}
	for _, r := range batch {
		if r.kind == kindAttempt && r.status == http.StatusGone {
			r.job.lane.gone.Store(false) // recorded: rec.disabled says whether it stays disabled
		}
	}
	for _, dis := range rec.disabled {
		if l := d.co.lanes[dis.webhook.ID]; l != nil {
			l.disabled.Store(true)
		}
		d.log.Warn("webhook disabled", "webhook_id", dis.webhook.ID, "reason", dis.reason)
	}
	if h := d.hooks.DeliveryChanged; h != nil {
		for _, c := range rec.changed {
			h(d.dbCtx, c)
		}
	}
	if h := d.hooks.DeliveriesChanged; h != nil && len(rec.changed) > 0 {
		h(d.dbCtx, rec.changed)
	}
	if h := d.hooks.WebhookDisabled; h != nil {
		for _, dis := range rec.disabled {
			h(d.dbCtx, dis.webhook, dis.reason)
		}
	}
	return claimed
}

// unbook takes a batch's jobs off the coordinator's books (whatever becomes of the batch: a job
// whose outcome cannot be recorded is over too) and notes its requests' times.
func (d *Dispatcher) unbook(batch []result) {
	for _, r := range batch {
		delete(d.co.inflight, r.job.d.ID)
		l := r.job.lane
		l.claimed--
		if r.kind == kindAttempt {
			if h := d.hooks.AttemptFinished; h != nil {
				h(r.status, r.errCode == "", r.duration)
			}
			if l.avgDuration == 0 {
				l.avgDuration = r.duration
			} else {
				l.avgDuration += (r.duration - l.avgDuration) / 8
			}
		}
	}
}

// errClaimLost says an update found a delivery no longer claimed as the job's lease says.
var errClaimLost = errors.New("delivery claim lost")

// commit writes a batch in one transaction: the attempts, the deliveries' new states, released
// claims, the webhooks' counters and any disabling. Every delivery UPDATE is fenced by the
// job's claim (claimed_by and the exact claimed_until). Without verify, commit assumes every
// claim is still ours and fails with errClaimLost when an UPDATE says otherwise; with verify, it
// reads the claims first and skips the outcomes whose claim is gone (the row was deleted, or
// another instance took it over after our lease expired). With claim, the transaction also
// claims due deliveries (claim) before it commits.
func (d *Dispatcher) commit(ctx context.Context, batch []result, now time.Time, verify, claim bool) (rec recorded, err error) {
	byID := make(map[int]*result, len(batch))
	ids := make([]int, 0, len(batch))
	for i := range batch {
		if r := &batch[i]; r.kind != kindDrop {
			byID[r.job.d.ID] = r
			ids = append(ids, r.job.d.ID)
		}
	}
	if len(ids) == 0 && !claim {
		return rec, nil
	}
	tx, err := d.client.Tx(ctx)
	if err != nil {
		return rec, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()

	owned := make(map[int]bool, len(ids))
	if verify {
		rows, err := tx.Delivery.Query().Where(delivery.IDIn(padIDs(ids)...)).
			Select(delivery.FieldID, delivery.FieldStatus, delivery.FieldClaimedBy, delivery.FieldClaimedUntil).
			All(ctx)
		if err != nil {
			return rec, fmt.Errorf("check claims: %w", err)
		}
		for _, row := range rows {
			r := byID[row.ID]
			owned[row.ID] = row.Status == delivery.StatusPENDING &&
				row.ClaimedBy != nil && *row.ClaimedBy == d.cfg.InstanceID &&
				row.ClaimedUntil != nil && row.ClaimedUntil.Equal(r.job.claimedUntil)
		}
	} else {
		for _, id := range ids {
			owned[id] = true
		}
	}

	var (
		release  []int
		attempts []*result
		updates  []deliveryUpdate
		aggs     = map[int]*webhookAgg{}
		order    []int // webhook ids, sorted below: instances lock webhook rows in one order
	)
	for i := range batch {
		r := &batch[i]
		id := r.job.d.ID
		if r.kind == kindDrop || !owned[id] {
			continue
		}
		if r.kind == kindRelease {
			release = append(release, id)
			continue
		}
		status, next, gone := d.decide(r, now)
		attempts = append(attempts, r)
		u, c := newDeliveryUpdate(r, status, next)
		updates = append(updates, u)
		rec.changed = append(rec.changed, c)
		if next != nil {
			rec.retries = append(rec.retries, *next)
		}

		a := aggs[r.job.d.WebhookID]
		if a == nil {
			a = &webhookAgg{}
			aggs[r.job.d.WebhookID] = a
			order = append(order, r.job.d.WebhookID)
		}
		if r.requestedAt.After(a.lastTriggered) {
			a.lastTriggered = r.requestedAt
		}
		switch status {
		case delivery.StatusSUCCESS:
			a.successes++
			a.reset, a.failedAfter, a.firstFailAfter = true, 0, time.Time{}
		default:
			a.failedAttempt = true
			if a.firstFailAfter.IsZero() {
				a.firstFailAfter = r.requestedAt
			}
			if status == delivery.StatusFAILED {
				a.failures++
				a.failedAfter++
			}
			a.gone = a.gone || gone
		}
	}

	if len(release) > 0 {
		err := tx.Delivery.Update().
			Where(delivery.IDIn(padIDs(release)...), delivery.ClaimedBy(d.cfg.InstanceID)).
			ClearClaimedUntil().ClearClaimedBy().Exec(ctx)
		if err != nil {
			return rec, fmt.Errorf("release claims: %w", err)
		}
	}
	if len(attempts) > 0 {
		// Updates first: they find out whether every claim is still ours.
		if err := d.updateDeliveries(ctx, tx, updates); err != nil {
			return rec, err
		}
		if err := d.insertAttempts(ctx, tx, attempts); err != nil {
			return rec, err
		}
	}
	slices.Sort(order)
	var failing []int
	for _, wid := range order {
		a := aggs[wid]
		if err := updateWebhook(ctx, tx, wid, a); err != nil {
			return rec, err
		}
		if a.failedAttempt {
			failing = append(failing, wid)
		}
	}
	if len(failing) > 0 {
		if rec.disabled, err = d.disableFailing(ctx, tx, failing, aggs, now); err != nil {
			return rec, err
		}
	}
	if claim {
		if err := d.claim(ctx, tx.Client(), false); err != nil {
			return rec, fmt.Errorf("claim: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return rec, fmt.Errorf("commit: %w", err)
	}
	return rec, nil
}

// decide turns an attempt's outcome into the delivery's next state (DESIGN.md §6).
func (d *Dispatcher) decide(r *result, now time.Time) (status delivery.Status, next *time.Time, gone bool) {
	if r.errCode == "" {
		return delivery.StatusSUCCESS, nil, false
	}
	if r.status == http.StatusGone {
		return delivery.StatusFAILED, nil, true
	}
	wait, again := NextDelay(d.cfg.Schedule, r.job.attempt, d.cfg.Jitter, nil)
	if !again {
		return delivery.StatusFAILED, nil, false
	}
	if r.hasRetryAfter {
		wait = r.retryAfter
	}
	at := now.Add(wait)
	return delivery.StatusPENDING, &at, false
}

// attemptColumns are the delivery_attempts columns insertAttempts writes: all but the id.
var attemptColumns = []string{
	deliveryattempt.FieldDeliveryID, deliveryattempt.FieldNumber, deliveryattempt.FieldRequestedAt,
	deliveryattempt.FieldDurationMs, deliveryattempt.FieldRequestHeaders, deliveryattempt.FieldResponseStatus,
	deliveryattempt.FieldResponseHeaders, deliveryattempt.FieldResponseBody, deliveryattempt.FieldErrorCode,
	deliveryattempt.FieldErrorMessage,
}

// insertAttempts writes the delivery_attempts rows of a batch, in runs of power-of-two lengths
// so that the INSERTs' texts repeat (sqlshape.go). The statement is built here rather than by
// ent's CreateBulk, which also builds a mutation per row and reads the new ids back: that was a
// sixth of the coordinator's allocations, for ids nothing uses. The values are those ent would
// bind: JSON columns as their encoding, NULL for what the attempt did not produce.
func (d *Dispatcher) insertAttempts(ctx context.Context, tx *ent.Tx, attempts []*result) error {
	for _, n := range powerOfTwoChunks(len(attempts), attemptChunk) {
		ins := sql.Dialect(d.cfg.Dialect).Insert(deliveryattempt.Table).Columns(attemptColumns...)
		for _, r := range attempts[:n] {
			var status, respHeaders, body, code, msg any
			if r.status != 0 {
				status, respHeaders = r.status, []byte(r.respHeaders)
			}
			if r.respBody != nil {
				body = *r.respBody
			}
			if r.errCode != "" {
				code, msg = string(r.errCode), r.errMsg
			}
			ins.Values(r.job.d.ID, r.job.attempt, r.requestedAt, int(r.duration.Milliseconds()), []byte(r.reqHeaders),
				status, respHeaders, body, code, msg)
		}
		query, args := ins.Query()
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("insert attempts: %w", err)
		}
		attempts = attempts[n:]
	}
	return nil
}

// deliveryUpdate is a delivery's new state after an attempt.
type deliveryUpdate struct {
	id          int
	claimed     time.Time // the job's lease, which fences the UPDATE
	status      delivery.Status
	attempts    int
	next        *time.Time
	respStatus  *int
	errMsg      *string
	deliveredAt *time.Time
}

// newDeliveryUpdate describes the delivery's new state, and returns the delivery as it will be
// committed, for DeliveryChanged.
func newDeliveryUpdate(r *result, status delivery.Status, next *time.Time) (deliveryUpdate, *ent.Delivery) {
	u := deliveryUpdate{id: r.job.d.ID, claimed: r.job.claimedUntil, status: status, attempts: r.job.attempt, next: next}
	if r.status != 0 {
		s := r.status
		u.respStatus = &s
	}
	if r.errCode != "" {
		msg := r.errMsg
		u.errMsg = &msg
	}
	if status == delivery.StatusSUCCESS {
		at := r.requestedAt.Add(r.duration)
		u.deliveredAt = &at
	}
	c := *r.job.d
	c.Status, c.AttemptCount, c.NextAttemptAt = u.status, u.attempts, u.next
	c.ResponseStatus, c.ErrorMessage, c.DeliveredAt = u.respStatus, u.errMsg, u.deliveredAt
	c.ClaimedUntil, c.ClaimedBy = nil, nil
	return u, &c
}

// successChunk bounds the rows of one success UPDATE: SQLite's code generator compares each
// bound value with the others, so a statement's cost grows with the square of its parameters.
const successChunk = 64

// attemptChunk bounds the rows of one attempts INSERT (a power of two).
const attemptChunk = 64

// updateDeliveries writes the new states of a batch and clears the claims. Successes, the bulk
// of the traffic, share one statement per (attempt count, status code) and chunk, with only
// delivered_at varying; retries and failures get a statement each.
func (d *Dispatcher) updateDeliveries(ctx context.Context, tx *ent.Tx, ups []deliveryUpdate) error {
	type key struct {
		attempts, status int
		claimed          time.Time
	}
	groups := map[key][]deliveryUpdate{}
	var keys []key
	for _, u := range ups {
		if u.status != delivery.StatusSUCCESS || u.respStatus == nil || u.deliveredAt == nil {
			if err := d.updateDelivery(ctx, tx, u); err != nil {
				return err
			}
			continue
		}
		k := key{u.attempts, *u.respStatus, u.claimed}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], u)
	}
	for _, k := range keys {
		g := groups[k]
		for start := 0; start < len(g); start += successChunk {
			chunk := g[start:min(start+successChunk, len(g))]
			ids := make([]int, len(chunk))
			for i, u := range chunk {
				ids[i] = u.id
			}
			// Padded with repeats of the last row (sqlshape.go); the count of rows changed
			// stays len(chunk).
			ids = padIDs(ids)
			cases := make([]deliveryUpdate, len(ids))
			for i := range cases {
				cases[i] = chunk[min(i, len(chunk)-1)]
			}
			n, err := tx.Delivery.Update().
				Where(d.fence(k.claimed), delivery.IDIn(ids...)).
				SetStatus(delivery.StatusSUCCESS).SetAttemptCount(k.attempts).SetResponseStatus(k.status).
				ClearNextAttemptAt().ClearErrorMessage().ClearClaimedUntil().ClearClaimedBy().
				Modify(func(s *sql.UpdateBuilder) {
					s.Set(delivery.FieldDeliveredAt, deliveredAtByID(cases))
				}).
				Save(ctx)
			if err != nil {
				return fmt.Errorf("update delivered deliveries: %w", err)
			}
			if n != len(chunk) {
				return errClaimLost
			}
		}
	}
	return nil
}

// deliveredAtByID is "CASE id WHEN <id> THEN <delivered_at> … END". PostgreSQL types a CASE of
// bare parameters as text, so there each value is cast; SQLite needs no cast (and a cast to a
// time type would turn its time text into a number).
func deliveredAtByID(ups []deliveryUpdate) sql.Querier {
	return sql.ExprFunc(func(b *sql.Builder) {
		b.WriteString("CASE ").Ident(delivery.FieldID)
		for i := range ups {
			b.WriteString(" WHEN ").Arg(ups[i].id).WriteString(" THEN ")
			if b.Dialect() == dialect.Postgres {
				b.WriteString("CAST(").Arg(*ups[i].deliveredAt).WriteString(" AS timestamptz)")
			} else {
				b.Arg(*ups[i].deliveredAt)
			}
		}
		b.WriteString(" END")
	})
}

// updateDelivery writes one delivery's new state and clears its claim.
func (d *Dispatcher) updateDelivery(ctx context.Context, tx *ent.Tx, u deliveryUpdate) error {
	n, err := tx.Delivery.Update().Where(d.fence(u.claimed), delivery.ID(u.id)).
		SetStatus(u.status).SetAttemptCount(u.attempts).
		SetNillableNextAttemptAt(u.next).SetNillableResponseStatus(u.respStatus).
		SetNillableErrorMessage(u.errMsg).SetNillableDeliveredAt(u.deliveredAt).
		Modify(func(s *sql.UpdateBuilder) {
			// NULL for what the attempt did not produce; the claim is cleared.
			for col, isNil := range map[string]bool{
				delivery.FieldNextAttemptAt:  u.next == nil,
				delivery.FieldResponseStatus: u.respStatus == nil,
				delivery.FieldErrorMessage:   u.errMsg == nil,
				delivery.FieldDeliveredAt:    u.deliveredAt == nil,
				delivery.FieldClaimedUntil:   true,
				delivery.FieldClaimedBy:      true,
			} {
				if isNil {
					s.SetNull(col)
				}
			}
		}).
		Save(ctx)
	if err != nil {
		return fmt.Errorf("update delivery: %w", err)
	}
	if n != 1 {
		return errClaimLost
	}
	return nil
}

// fence matches deliveries still PENDING under this instance's claim with the given lease.
func (d *Dispatcher) fence(claimedUntil time.Time) predicate.Delivery {
	return delivery.And(
		pendingNotIndexed,
		delivery.ClaimedBy(d.cfg.InstanceID),
		delivery.ClaimedUntil(claimedUntil),
	)
}

// updateWebhook applies a batch's sums to the webhook row in one statement. Counters are added
// in SQL, not read and written back, so instances sharing a database do not lose updates, and
// updated_at is kept: the counters are not an edit of the webhook (and the dispatcher's cache of
// decrypted secrets is keyed by it).
func updateWebhook(ctx context.Context, tx *ent.Tx, id int, a *webhookAgg) error {
	u := tx.Webhook.Update().Where(webhook.ID(id)).SetLastTriggeredAt(a.lastTriggered)
	if a.successes > 0 {
		u.AddSuccessCount(a.successes)
	}
	if a.failures > 0 {
		u.AddFailureCount(a.failures)
	}
	if a.reset {
		u.SetConsecutiveFailures(a.failedAfter)
		if a.firstFailAfter.IsZero() {
			u.ClearFirstFailureAt()
		} else {
			u.SetFirstFailureAt(a.firstFailAfter)
		}
	} else if a.failedAfter > 0 {
		u.AddConsecutiveFailures(a.failedAfter)
	}
	u.Modify(func(s *sql.UpdateBuilder) {
		s.Set(webhook.FieldUpdatedAt, sql.ExprFunc(func(b *sql.Builder) {
			b.Ident(webhook.FieldUpdatedAt)
		}))
		if !a.reset && !a.firstFailAfter.IsZero() {
			s.Set(webhook.FieldFirstFailureAt, sql.ExprFunc(func(b *sql.Builder) {
				b.WriteString("COALESCE(").Ident(webhook.FieldFirstFailureAt).Comma().Arg(a.firstFailAfter).WriteString(")")
			}))
		}
	})
	if err := u.Exec(ctx); err != nil {
		return fmt.Errorf("update webhook counters: %w", err)
	}
	return nil
}

// disableFailing disables the webhooks among ids that answered 410 Gone or whose failures
// reached a limit, and returns the ones this transaction disabled.
func (d *Dispatcher) disableFailing(ctx context.Context, tx *ent.Tx, ids []int, aggs map[int]*webhookAgg, now time.Time) ([]disabling, error) {
	whs, err := tx.Webhook.Query().Where(webhook.IDIn(ids...), webhook.IsActive(true)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("check failing webhooks: %w", err)
	}
	var out []disabling
	for _, w := range whs {
		reason := d.disableReason(w, aggs[w.ID], now)
		if reason == "" {
			continue
		}
		n, err := tx.Webhook.Update().Where(webhook.ID(w.ID), webhook.IsActive(true)).
			SetIsActive(false).SetDisabledReason(reason).Save(ctx)
		if err != nil {
			return nil, fmt.Errorf("disable webhook: %w", err)
		}
		if n == 0 {
			continue // disabled meanwhile by someone else, who reports it
		}
		w, err := tx.Webhook.Get(ctx, w.ID)
		if err != nil {
			return nil, fmt.Errorf("reload disabled webhook: %w", err)
		}
		out = append(out, disabling{webhook: w, reason: reason})
	}
	return out, nil
}

// disableReason says why w must be disabled now, or "" when it need not be.
func (d *Dispatcher) disableReason(w *ent.Webhook, a *webhookAgg, now time.Time) string {
	switch {
	case a != nil && a.gone:
		return "receiver answered 410 Gone"
	case w.ConsecutiveFailures >= d.cfg.FailuresToDisable:
		return fmt.Sprintf("%d deliveries in a row failed", w.ConsecutiveFailures)
	case w.FirstFailureAt != nil && now.Sub(*w.FirstFailureAt) >= d.cfg.FailingPeriodToDisable:
		return fmt.Sprintf("every attempt failed for %s", formatPeriod(d.cfg.FailingPeriodToDisable))
	}
	return ""
}

// formatPeriod spells a period in days when it is whole days.
func formatPeriod(p time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case p == day:
		return "1 day"
	case p%day == 0:
		return fmt.Sprintf("%d days", p/day)
	}
	return p.String()
}

// pendingNotIndexed is status = 'PENDING' written so that SQLite does not use an index for it.
// Fenced UPDATEs name their rows by id; without table statistics, SQLite's planner would
// otherwise walk the (status, next_attempt_at) index through every pending delivery, which
// made recording a batch cost as much as the backlog is long.
func pendingNotIndexed(s *sql.Selector) {
	s.Where(sql.P(func(b *sql.Builder) {
		if b.Dialect() == dialect.SQLite {
			b.WriteString("+")
		}
		b.WriteString(s.C(delivery.FieldStatus)).WriteOp(sql.OpEQ).Arg(delivery.StatusPENDING.String())
	}))
}
