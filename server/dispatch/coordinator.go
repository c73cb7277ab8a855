package dispatch

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"entgo.io/ent/dialect"
	"entgo.io/ent/dialect/sql"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/delivery"
	"github.com/eventgate/eventgate/ent/event"
	"github.com/eventgate/eventgate/ent/predicate"
	"github.com/eventgate/eventgate/ent/webhook"
)

// coordinator is the state of the coordinator goroutine; nothing else touches it.
type coordinator struct {
	lanes    map[int]*lane // by webhook id
	inflight map[int]*job  // claimed and not yet recorded, by delivery id
	claims   []claimedJob  // booked by book, waiting for their claims to commit (launchClaims)
	renewals []renewal     // leases of jobs in flight that a claim renewed, once it commits
	// unrecorded are the results being recorded (taken from the inbox); recordTimer fires when
	// the first result in the inbox has waited recordDelay (recordArmed: it is running).
	unrecorded  []result
	recordTimer *time.Timer
	recordArmed bool
	events      eventCache
	// backlog says the last claim was cut short by claimBudget: more may be due.
	backlog bool
	// dueAt is when the due timer fires (zero: stopped).
	dueAt time.Time
	due   *time.Timer
}

func newCoordinator() coordinator {
	t := time.NewTimer(time.Hour)
	t.Stop()
	rt := time.NewTimer(time.Hour)
	rt.Stop()
	return coordinator{
		lanes: map[int]*lane{}, inflight: map[int]*job{}, events: newEventCache(eventCacheSize, eventCacheBytes),
		due: t, recordTimer: rt,
	}
}

// maxBatch bounds the outcomes recorded in one transaction.
const maxBatch = 512

// Results are recorded once recordBatch of them are waiting or the first has waited recordDelay,
// or drainRecordDelay while some lane has more due than it could claim: each commit waits for
// the disk and costs ≈ 300 µs of CPU in fsync here, and writes every page it touched (the
// B-trees' edges and inner pages each time), so fewer, larger commits pay for the short wait
// (the claims that refill the lanes go into the same transaction; the lanes' prefetch covers
// the wait). Draining a backlog at 25 ms rather than 10 wrote a fifth fewer WAL frames per
// delivery; without a backlog the shorter wait keeps the transactions, which hold SQLite's
// write lock that publishing events needs too, short (scenario 3 of cmd/eventgate-bench:
// publish→first attempt p50 16 → 36 ms with 25 ms always).
const (
	recordBatch      = 512
	recordDelay      = 10 * time.Millisecond
	drainRecordDelay = 25 * time.Millisecond
)

// laneIdle is how long an unused lane (and its cached secrets) is kept.
const laneIdle = 10 * time.Minute

// run is the coordinator goroutine: it claims, records, renews leases, and returns once it was
// told to quit and every claimed delivery has been recorded or released.
func (d *Dispatcher) run(ctx context.Context) {
	defer close(d.done)
	defer d.co.due.Stop()
	defer d.co.recordTimer.Stop()
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	renew := time.NewTicker(max(d.cfg.Lease/3, time.Millisecond))
	defer renew.Stop()

	quitting := false
	// claimNow refills the lanes known to have more; discover also looks for deliveries of
	// other webhooks, which costs a read past those lanes' backlogs, so it runs only when
	// something new may be due (a wake, a retry's time, the poll) or the last look was cut short.
	claimNow, discover := true, true
	for {
		if quitting {
			if len(d.co.inflight) == 0 {
				return
			}
		} else if claimNow {
			d.claimAlone(discover)
			claimNow, discover = false, false
		}
		var quitCh, ctxDone <-chan struct{}
		if !quitting {
			quitCh, ctxDone = d.quitCtx.Done(), ctx.Done()
		}
		select {
		case <-d.inbox.ready:
			if quitting || d.inbox.len() >= recordBatch {
				claimNow = d.flush() || claimNow
			} else if !d.co.recordArmed {
				d.co.recordArmed = true
				d.co.recordTimer.Reset(d.recordWait())
			}
		case <-d.co.recordTimer.C:
			d.co.recordArmed = false
			claimNow = d.flush() || claimNow
		case <-d.wake:
			claimNow, discover = true, true
		case <-d.co.due.C:
			d.co.dueAt = time.Time{}
			claimNow, discover = true, true
		case <-poll.C:
			claimNow, discover = true, true
			d.prune()
			d.wire.closeIdle(false)
			d.checkLanes()
		case <-renew.C:
			d.renew()
		case <-quitCh:
			quitting = true
			d.flush()
		case <-ctxDone:
			d.quit()
			quitting = true
			d.flush()
		}
	}
}

// flush records the results in the inbox, maxBatch to a transaction, and says whether freed
// capacity should be claimed now (record claims in its transaction when it can).
func (d *Dispatcher) flush() (claimNow bool) {
	if d.co.recordArmed {
		d.co.recordTimer.Stop()
		d.co.recordArmed = false
	}
	d.co.unrecorded = d.inbox.takeAll(d.co.unrecorded)
	for len(d.co.unrecorded) > 0 {
		n := min(len(d.co.unrecorded), maxBatch)
		if !d.record(d.co.unrecorded[:n]) {
			claimNow = d.wantsClaim()
		}
		d.co.unrecorded = append(d.co.unrecorded[:0], d.co.unrecorded[n:]...)
	}
	clear(d.co.unrecorded[:cap(d.co.unrecorded)])
	return claimNow
}

// recordWait is how long the first result in the inbox may wait for others to be recorded with.
func (d *Dispatcher) recordWait() time.Duration {
	if d.co.backlog {
		return drainRecordDelay
	}
	for _, l := range d.co.lanes {
		if l.backlog {
			return drainRecordDelay
		}
	}
	return recordDelay
}

// wantsClaim says whether freed capacity is worth a claim now: half the global budget when due
// deliveries were left behind, or half a lane's budget for a lane that had more.
func (d *Dispatcher) wantsClaim() bool {
	free := d.claimBudget - len(d.co.inflight)
	if free <= 0 {
		return false
	}
	if d.co.backlog && free >= d.claimBudget/2 {
		return true
	}
	for _, l := range d.co.lanes {
		if l.backlog && l.claimed <= d.laneLimit(l)/2 {
			return true
		}
	}
	return false
}

// claim takes due deliveries up to the budgets and books a job for each. With discover (or when
// the last look was cut short), it first finds the webhooks with due deliveries (discover); then
// each lane with a backlog is refilled, the least served first, with its share of the budget, by
// a statement of its own that reads only its webhook's due rows (claimLane).
//
// claim runs on client, which may be a transaction's: the claimed jobs wait in co.claims until
// the caller has committed and calls launchClaims (or abandonClaims when it could not commit).
func (d *Dispatcher) claim(ctx context.Context, client *ent.Client, discover bool) error {
	if discover || d.co.backlog {
		if err := d.discover(ctx, client); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	var lanes []*lane
	for _, l := range d.co.lanes {
		if l.backlog && l.claimed < d.laneLimit(l) {
			lanes = append(lanes, l)
		}
	}
	if len(lanes) == 0 {
		return nil
	}
	// The least served lanes first, each with a share of the budget, so that no backlog waits
	// behind the others'.
	slices.SortFunc(lanes, func(a, b *lane) int { return cmp.Compare(a.claimed, b.claimed) })
	budget := d.claimBudget - len(d.co.inflight)
	share := max((budget+len(lanes)-1)/len(lanes), 1)
	until := d.leaseFrom(now)
	var picked []*ent.Delivery
	for _, l := range lanes {
		if budget <= 0 {
			break // the lanes keep their backlog and are refilled as results come in
		}
		want := roundLimit(min(d.laneLimit(l)-l.claimed, share, budget))
		claimed, err := d.claimLane(ctx, client, l.id, now, until, want)
		if err != nil {
			return fmt.Errorf("claim due deliveries: %w", err)
		}
		l.backlog = len(claimed) == want
		budget -= len(claimed)
		for _, c := range claimed {
			if j, mine := d.co.inflight[c.ID]; mine {
				// Our lease ran out while our request was still running: the claim
				// renews it once committed.
				d.co.renewals = append(d.co.renewals, renewal{job: j, until: until})
				continue
			}
			picked = append(picked, c)
		}
	}
	if len(picked) > 0 {
		return d.book(ctx, client, now, until, picked)
	}
	return nil
}

// claimAlone claims in a transaction of its own (a wake, the poll, a retry's time; claims that
// follow a recorded batch go into its transaction), then launches what it claimed.
func (d *Dispatcher) claimAlone(discover bool) {
	// Discovery only reads: outside the transaction, which holds SQLite's one write lock.
	if discover || d.co.backlog {
		if err := d.discover(d.dbCtx, d.client); err != nil {
			d.logDBError("claim deliveries", err)
			return
		}
	}
	if !d.wantsRefill() {
		return
	}
	tx, err := d.client.Tx(d.dbCtx)
	if err != nil {
		d.logDBError("claim deliveries", err)
		return
	}
	if err := d.claim(d.dbCtx, tx.Client(), false); err != nil {
		_ = tx.Rollback()
		d.abandonClaims()
		d.logDBError("claim deliveries", err)
		return
	}
	if err := tx.Commit(); err != nil {
		d.abandonClaims()
		d.logDBError("claim deliveries", err)
		return
	}
	d.launchClaims()
}

// wantsRefill says whether some lane has due deliveries to claim and room for them.
func (d *Dispatcher) wantsRefill() bool {
	if d.claimBudget-len(d.co.inflight) <= 0 {
		return false
	}
	for _, l := range d.co.lanes {
		if l.backlog && l.claimed < d.laneLimit(l) {
			return true
		}
	}
	return false
}

// leaseFrom is the lease of a claim made at now. Microseconds: PostgreSQL keeps no more, and the
// fence compares the stored value exactly.
func (d *Dispatcher) leaseFrom(now time.Time) time.Time {
	return now.Add(d.cfg.Lease).Truncate(time.Microsecond)
}

// claimLane claims up to limit of a webhook's due deliveries in due order, in one statement that
// finds, claims and returns them (in id order): reading them first and claiming them by id
// after cost a second pass over the rows and their columns. On PostgreSQL, rows another
// instance is claiming meanwhile are skipped, not waited for.
func (d *Dispatcher) claimLane(ctx context.Context, client *ent.Client, webhookID int, now, until time.Time, limit int) ([]*ent.Delivery, error) {
	query, args := d.claimLaneQuery(webhookID, now, until, limit)
	rows, err := client.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*ent.Delivery
	for rows.Next() {
		c := &ent.Delivery{}
		if err := rows.Scan(&c.ID, &c.WebhookID, &c.EventID, &c.AttemptCount, &c.CreatedAt); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *ent.Delivery) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// claimLaneQuery is claimLane's statement.
func (d *Dispatcher) claimLaneQuery(webhookID int, now, until time.Time, limit int) (string, []any) {
	b := sql.Dialect(d.cfg.Dialect)
	due := b.Select(delivery.FieldID).From(sql.Table(delivery.Table))
	for _, p := range d.lanePredicates(webhookID, now) {
		p(due)
	}
	due.OrderBy(delivery.FieldNextAttemptAt, delivery.FieldID).Limit(limit)
	if d.cfg.Dialect == dialect.Postgres {
		due.ForUpdate(sql.WithLockAction(sql.SkipLocked))
	}
	return b.Update(delivery.Table).
		Set(delivery.FieldClaimedUntil, until).Set(delivery.FieldClaimedBy, d.cfg.InstanceID).
		Where(sql.In(delivery.FieldID, due)).
		Returning(claimColumns...).
		Query()
}

// claimColumns are the columns a claim reads of a due delivery. The rest are known (status,
// event_type from its event), or are replaced when the attempt is recorded, so the delivery
// handed to DeliveryChanged is whole all the same; reading and parsing all of them was a third
// of a claim's cost.
var claimColumns = []string{
	delivery.FieldID, delivery.FieldWebhookID, delivery.FieldEventID, delivery.FieldAttemptCount, delivery.FieldCreatedAt,
}

// lanePredicates match the due deliveries of one webhook. In due order they walk the partial index on
// (webhook_id, next_attempt_at) over the deliveries with an attempt to make, so it reads only
// this webhook's rows: the status term is kept off the (status, next_attempt_at) index, which
// would read every webhook's due rows and filter them.
func (d *Dispatcher) lanePredicates(webhookID int, now time.Time) []predicate.Delivery {
	return []predicate.Delivery{
		delivery.WebhookID(webhookID),
		delivery.NextAttemptAtLTE(now),
		pendingNotIndexed,
		delivery.Or(delivery.ClaimedUntilIsNil(), delivery.ClaimedUntilLT(now)),
		activeWebhook,
	}
}

// activeWebhook matches deliveries of active webhooks. It is written by hand so that SQLite does
// not use an index for it: offered one through this IN, SQLite's planner (without table
// statistics) chose it over the due index and then read every due delivery and sorted them,
// instead of walking the due index in order and stopping at the LIMIT.
func activeWebhook(s *sql.Selector) {
	s.Where(sql.P(func(b *sql.Builder) {
		if b.Dialect() == dialect.SQLite {
			b.WriteString("+")
		}
		b.WriteString(s.C(delivery.FieldWebhookID)).WriteString(" IN (SELECT ").Ident(webhook.FieldID).
			WriteString(" FROM ").Ident(webhook.Table).WriteString(" WHERE ").Ident(webhook.FieldIsActive).
			WriteString(" = true)")
	}))
}

// discover finds the active webhooks with due deliveries and marks their lanes to be refilled
// (claim does that next, each lane with its share of the budget). It asks the webhooks, one probe
// of the due index each, rather than reading due deliveries in due order: that read had to walk
// past every due delivery of the lanes it left out (those with a known backlog), so each round
// cost as much as the backlog was long. Lanes known to have a backlog or saturated are not asked
// about; claim refills them anyway.
func (d *Dispatcher) discover(ctx context.Context, client *ent.Client) error {
	if d.claimBudget-len(d.co.inflight) <= 0 {
		d.co.backlog = true
		return nil
	}
	d.co.backlog = false
	now := time.Now().UTC()
	var known []int
	for id, l := range d.co.lanes {
		if l.claimed >= d.laneLimit(l) {
			l.backlog = true // not asked about: assume it has more
		}
		if l.backlog {
			known = append(known, id)
		}
	}
	preds := []predicate.Webhook{webhook.IsActive(true), hasDueDeliveries(now)}
	if len(known) > 0 {
		preds = append(preds, webhook.IDNotIn(padIDs(known)...))
	}
	due, err := client.Webhook.Query().Where(preds...).IDs(ctx)
	if err != nil {
		return fmt.Errorf("find webhooks with due deliveries: %w", err)
	}
	for _, id := range due {
		d.lane(id).backlog = true
	}
	d.scheduleNextDue(ctx, client, now)
	return nil
}

// hasDueDeliveries matches the webhooks that have a delivery to attempt at now: one probe of the
// partial due index per webhook (lanePredicates), which stops at the first row found.
func hasDueDeliveries(now time.Time) predicate.Webhook {
	return func(s *sql.Selector) {
		t := sql.Table(delivery.Table)
		sub := sql.Select(t.C(delivery.FieldID)).From(t)
		sub.Where(sql.ColumnsEQ(t.C(delivery.FieldWebhookID), s.C(webhook.FieldID)))
		for _, p := range []predicate.Delivery{
			delivery.NextAttemptAtLTE(now),
			pendingNotIndexed,
			delivery.Or(delivery.ClaimedUntilIsNil(), delivery.ClaimedUntilLT(now)),
		} {
			p(sub)
		}
		s.Where(sql.Exists(sub))
	}
}

// book loads what the requests of claimed deliveries need and books their jobs: in inflight and
// their lanes' counts at once, in co.claims until they are launched. It runs in the claim's
// transaction, whose rollback gives the deliveries back if loading fails.
func (d *Dispatcher) book(ctx context.Context, client *ent.Client, now, until time.Time, picked []*ent.Delivery) error {
	events, webhooks, err := d.loadFor(ctx, client, picked)
	if err != nil {
		return err
	}
	for _, c := range picked {
		c.Status, c.ClaimedUntil, c.ClaimedBy = delivery.StatusPENDING, &until, &d.cfg.InstanceID
		l := d.lane(c.WebhookID)
		j := &job{d: c, lane: l, attempt: c.AttemptCount + 1, claimedUntil: until, event: events[c.EventID]}
		if j.event != nil {
			c.EventType = j.event.Type
		}
		l.claimed++
		l.lastUsed = now
		d.co.inflight[c.ID] = j
		w := webhooks[c.WebhookID]
		if w == nil || !w.IsActive || j.event == nil {
			// Disabled or deleted since the SELECT: the delivery waits, unclaimed.
			d.co.claims = append(d.co.claims, claimedJob{job: j, kind: kindRelease})
			continue
		}
		t, err := d.targetFor(l, w, now)
		if err != nil {
			// Leave the claim to expire: an immediate release would spin on the same error.
			d.log.Error("load webhook secrets", "webhook_id", w.ID, "error", err)
			d.co.claims = append(d.co.claims, claimedJob{job: j, kind: kindDrop})
			continue
		}
		j.target = t
		d.co.claims = append(d.co.claims, claimedJob{job: j, kind: kindAttempt})
	}
	return nil
}

// claimedJob is a job booked by book and not launched yet. kind is kindAttempt for a request to
// make, or the result to hand straight back (kindRelease, kindDrop).
type claimedJob struct {
	job  *job
	kind resultKind
}

// renewal is a new lease for a job in flight, taken by a claim not yet committed.
type renewal struct {
	job   *job
	until time.Time
}

// launchClaims starts the jobs booked since the last launch, once their claims are committed,
// and applies the leases those claims renewed.
func (d *Dispatcher) launchClaims() {
	for _, r := range d.co.renewals {
		r.job.claimedUntil = r.until
	}
	clear(d.co.renewals)
	d.co.renewals = d.co.renewals[:0]
	for _, c := range d.co.claims {
		if c.kind != kindAttempt {
			d.inbox.put(result{job: c.job, kind: c.kind})
			continue
		}
		d.enqueue(c.job)
	}
	clear(d.co.claims)
	d.co.claims = d.co.claims[:0]
}

// abandonClaims unbooks the jobs booked since the last launch: their claims were not committed.
// The leases they would have renewed stay as they were.
func (d *Dispatcher) abandonClaims() {
	clear(d.co.renewals)
	d.co.renewals = d.co.renewals[:0]
	for _, c := range d.co.claims {
		delete(d.co.inflight, c.job.d.ID)
		c.job.lane.claimed--
	}
	clear(d.co.claims)
	d.co.claims = d.co.claims[:0]
}

// loadFor loads the events and webhooks of the claimed deliveries. Events are taken from the
// coordinator's cache where they are (an event goes to each of its webhooks, usually in claims
// close together), the rest read in one query and kept.
func (d *Dispatcher) loadFor(ctx context.Context, client *ent.Client, picked []*ent.Delivery) (map[int]*ent.Event, map[int]*ent.Webhook, error) {
	events := make(map[int]*ent.Event, len(picked))
	var missing, whIDs []int
	seenWH := map[int]bool{}
	for _, c := range picked {
		if _, ok := events[c.EventID]; !ok {
			e := d.co.events.get(c.EventID)
			events[c.EventID] = e
			if e == nil {
				missing = append(missing, c.EventID)
			}
		}
		if !seenWH[c.WebhookID] {
			seenWH[c.WebhookID] = true
			whIDs = append(whIDs, c.WebhookID)
		}
	}
	if len(missing) > 0 {
		evs, err := client.Event.Query().Where(event.IDIn(padIDs(missing)...)).All(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range evs {
			events[e.ID] = e
			d.co.events.put(e)
		}
	}
	whs, err := client.Webhook.Query().Where(webhook.IDIn(padIDs(whIDs)...)).All(ctx)
	if err != nil {
		return nil, nil, err
	}
	webhooks := make(map[int]*ent.Webhook, len(whs))
	for _, w := range whs {
		webhooks[w.ID] = w
	}
	return events, webhooks, nil
}

// scheduleNextDue arms the due timer for the earliest retry in the future, so a retry runs on
// time even when another instance scheduled it; the poll is only a safety net.
func (d *Dispatcher) scheduleNextDue(ctx context.Context, client *ent.Client, now time.Time) {
	next, err := client.Delivery.Query().
		Where(delivery.StatusEQ(delivery.StatusPENDING), delivery.NextAttemptAtGT(now)).
		Order(delivery.ByNextAttemptAt()).
		Select(delivery.FieldNextAttemptAt).
		First(ctx)
	if err != nil {
		if !ent.IsNotFound(err) {
			d.logDBError("find next due delivery", err)
		}
		return
	}
	if next.NextAttemptAt != nil {
		d.noteDue(*next.NextAttemptAt)
	}
}

// noteDue makes sure the coordinator claims again at t.
func (d *Dispatcher) noteDue(t time.Time) {
	if !d.co.dueAt.IsZero() && !t.Before(d.co.dueAt) {
		return
	}
	d.co.dueAt = t
	d.co.due.Reset(max(time.Until(t), 0))
}

// renew extends the leases of claims that are getting old (requests waiting behind a slow or
// rate-limited webhook), so no other instance takes them over while they are in hand.
func (d *Dispatcher) renew() {
	now := time.Now().UTC()
	var ids []int
	for id, j := range d.co.inflight {
		if j.claimedUntil.Sub(now) < d.cfg.Lease*2/3 {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return
	}
	until := now.Add(d.cfg.Lease).Truncate(time.Microsecond)
	for start := 0; start < len(ids); start += maxBatch {
		chunk := ids[start:min(start+maxBatch, len(ids))]
		err := d.client.Delivery.Update().
			Where(delivery.IDIn(padIDs(chunk)...), delivery.ClaimedBy(d.cfg.InstanceID), pendingNotIndexed).
			SetClaimedUntil(until).Exec(d.dbCtx)
		if err != nil {
			d.logDBError("renew leases", err)
			return
		}
		for _, id := range chunk {
			d.co.inflight[id].claimedUntil = until
		}
	}
}

// fastLane is the mean request time under which a webhook gets the deep prefetch.
const fastLane = 50 * time.Millisecond

// laneLimit is how many of a webhook's deliveries may be claimed at once. A fast webhook gets a
// deep prefetch so that claims come in large batches; a slow, rate-limited or not yet measured
// one gets twice its in-flight limit, so that its waiting deliveries cannot take the claim
// budget from the others.
func (d *Dispatcher) laneLimit(l *lane) int {
	if t := l.target.Load(); l.avgDuration > 0 && l.avgDuration < fastLane && (t == nil || t.rate == 0) {
		return d.laneBudget
	}
	return 2 * d.cfg.PerWebhookInFlight
}

// lane returns the lane of a webhook, making it on first use.
func (d *Dispatcher) lane(webhookID int) *lane {
	l := d.co.lanes[webhookID]
	if l == nil {
		l = &lane{id: webhookID}
		d.co.lanes[webhookID] = l
		d.lanesByID.Store(webhookID, l)
	}
	return l
}

// prune forgets lanes unused for a while (deleted or quiet webhooks).
func (d *Dispatcher) prune() {
	cutoff := time.Now().Add(-laneIdle)
	for id, l := range d.co.lanes {
		if l.claimed == 0 && l.lastUsed.Before(cutoff) {
			delete(d.co.lanes, id)
			d.lanesByID.Delete(id)
		}
	}
}

// checkLanes looks at the webhooks of the lanes holding claimed requests and stops the requests
// of those disabled, changed or deleted since (another instance or an admin may have done it;
// WebhookChanged tells this instance's own changes at once).
func (d *Dispatcher) checkLanes() {
	var ids []int
	for id, l := range d.co.lanes {
		if l.claimed > 0 && l.target.Load() != nil && !l.disabled.Load() {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return
	}
	whs, err := d.client.Webhook.Query().Where(webhook.IDIn(padIDs(ids)...)).
		Select(webhook.FieldID, webhook.FieldIsActive, webhook.FieldUpdatedAt).All(d.dbCtx)
	if err != nil {
		d.logDBError("check webhooks", err)
		return
	}
	current := make(map[int]*ent.Webhook, len(whs))
	for _, w := range whs {
		current[w.ID] = w
	}
	for _, id := range ids {
		l := d.co.lanes[id]
		if w := current[id]; w == nil || !w.IsActive || !w.UpdatedAt.Equal(l.target.Load().updatedAt) {
			l.disabled.Store(true)
		}
	}
}

// logDBError logs a database error unless it comes from stopping.
func (d *Dispatcher) logDBError(what string, err error) {
	if d.dbCtx.Err() != nil {
		return
	}
	d.log.Error(what, "error", err)
}
