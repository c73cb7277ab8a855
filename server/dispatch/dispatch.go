// Package dispatch delivers events to webhooks (DESIGN.md §6): it claims due deliveries from the
// outbox table with a lease, POSTs signed requests through the SSRF guard, records every attempt,
// schedules retries and disables endpoints that keep failing.
//
// One coordinator goroutine owns all database writes of the dispatcher: it claims deliveries in
// batches and records outcomes in batches (one transaction for many outcomes), because SQLite has
// a single writer and pays an fsync per commit. Claimed deliveries queue in their webhook's lane,
// where up to PerWebhookInFlight worker goroutines take them in order; each waits for the
// webhook's rate limit and a global slot (Workers) before it sends, so a slow endpoint holds only
// its own workers.
//
// A claim is a lease (claimed_until, claimed_by): a crashed instance's deliveries are taken over
// once it passes, and the coordinator renews the leases of requests that wait long. An outcome is
// written only while its claim is still this instance's, so a delivery taken over meanwhile is
// not recorded twice.
package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"entgo.io/ent/dialect"
	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/server/netguard"
	"github.com/eventgate/eventgate/server/secretbox"
)

// Config tunes the dispatcher. Zero values mean the defaults given with each field.
type Config struct {
	// Dialect is the ent client's SQL dialect: dialect.SQLite (the default) or
	// dialect.Postgres. The dispatcher writes some statements itself.
	Dialect string
	// Workers bounds the requests in flight across all webhooks (default 16).
	Workers int
	// PerWebhookInFlight bounds the requests in flight to one webhook (default 4).
	PerWebhookInFlight int
	// Lease is how long a claim holds a delivery before another instance may take it over
	// (default 2m). Claims of requests still waiting are renewed.
	Lease time.Duration
	// PollInterval is the safety-net poll for due deliveries that no Wake announced, such as
	// retries scheduled by another instance (default 2s).
	PollInterval time.Duration
	// Schedule holds the waits between attempts; len(Schedule)+1 attempts are made in all.
	// nil means DefaultSchedule(); an empty non-nil slice means a single attempt.
	Schedule []time.Duration
	// Jitter moves each wait by up to ±Jitter of itself (default 0.2); negative means none.
	Jitter float64
	// MaxRetryAfter caps a receiver's Retry-After (default 24h).
	MaxRetryAfter time.Duration
	// UserAgent is sent with every request (default "eventgate").
	UserAgent string
	// InstanceID names this process in claimed_by (default host name, pid and a random suffix).
	// Every running instance must have its own.
	InstanceID string
	// FailuresToDisable disables a webhook after that many deliveries in a row ended FAILED
	// (default 5).
	FailuresToDisable int
	// FailingPeriodToDisable disables a webhook whose attempts have done nothing but fail for
	// that long (default 5 days).
	FailingPeriodToDisable time.Duration
	// ShutdownTimeout is how long Stop lets requests in flight finish (default 10s).
	ShutdownTimeout time.Duration
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.Dialect == "" {
		c.Dialect = dialect.SQLite
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.PerWebhookInFlight <= 0 {
		c.PerWebhookInFlight = 4
	}
	if c.Lease <= 0 {
		c.Lease = 2 * time.Minute
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 2 * time.Second
	}
	if c.Schedule == nil {
		c.Schedule = DefaultSchedule()
	} else {
		c.Schedule = append([]time.Duration(nil), c.Schedule...)
	}
	if c.Jitter == 0 {
		c.Jitter = 0.2
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = 24 * time.Hour
	}
	if c.UserAgent == "" {
		c.UserAgent = "eventgate"
	}
	if c.InstanceID == "" {
		c.InstanceID = defaultInstanceID()
	}
	if c.FailuresToDisable <= 0 {
		c.FailuresToDisable = 5
	}
	if c.FailingPeriodToDisable <= 0 {
		c.FailingPeriodToDisable = 5 * 24 * time.Hour
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	return c
}

func defaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "eventgate"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Hooks are told about committed changes. They run on the dispatcher's coordinator goroutine,
// in commit order, so they must return quickly (hand the work to a queue, never block on I/O).
type Hooks struct {
	// DeliveryChanged is called after an attempt and the delivery's new state are committed.
	// d holds the delivery's fields as committed; its edges are not loaded.
	DeliveryChanged func(ctx context.Context, d *ent.Delivery)
	// DeliveriesChanged, when set, is called once per committed batch with the same deliveries
	// DeliveryChanged gets one by one, in commit order: cheaper when each call costs a round
	// trip (a PostgreSQL NOTIFY). Set one of the two.
	DeliveriesChanged func(ctx context.Context, ds []*ent.Delivery)
	// WebhookDisabled is called after the dispatcher disabled w (410 Gone or too many
	// failures); reason is the stored disabled_reason.
	WebhookDisabled func(ctx context.Context, w *ent.Webhook, reason string)
	// AttemptFinished, when set, is told about every request made: the HTTP status (0 when no
	// response came), whether it succeeded, and how long it took (metrics).
	AttemptFinished func(status int, success bool, duration time.Duration)
}

// Dispatcher delivers due deliveries to their webhooks. Make it with New, run it with Start and
// stop it with Stop.
type Dispatcher struct {
	client *ent.Client
	box    *secretbox.Box
	cfg    Config
	hooks  Hooks
	log    *slog.Logger
	wire   *wireClient

	// claimBudget bounds the deliveries claimed and not yet recorded; laneBudget bounds them for
	// a fast webhook (see laneLimit). Both leave room beyond the in-flight limits so that claims
	// come in large batches and a fast lane does not run dry while its results wait to be
	// recorded (recordDelay) and its refill to commit: at 16× the in-flight limits a quarter of
	// the request slots stood idle in scenario 4 of cmd/eventgate-bench. A claimed delivery
	// waiting in its lane costs a queue slot, not a goroutine; leases of claims that wait long
	// are renewed.
	claimBudget int
	laneBudget  int

	wake   chan struct{} // capacity 1: a pending nudge
	inbox  *resultInbox  // every job leaves exactly one result
	global chan struct{} // request slots shared by all webhooks

	mu      sync.Mutex // guards started
	started bool

	// Contexts made by Start. quit stops claiming and the jobs that have not sent yet; jobCtx
	// aborts requests in flight; dbCtx bounds the coordinator's database work.
	quitCtx    context.Context
	quit       context.CancelFunc
	jobCtx     context.Context
	cancelJobs context.CancelFunc
	dbCtx      context.Context
	cancelDB   context.CancelFunc
	done       chan struct{} // closed when the coordinator has returned
	jobs       sync.WaitGroup

	// lanesByID holds the coordinator's lanes for WebhookChanged, which other goroutines call.
	lanesByID sync.Map // webhook id → *lane

	// Owned by the coordinator goroutine.
	co coordinator
}

// New makes a Dispatcher. guard dials every webhook connection, refusing blocked targets; log
// receives its diagnostics (never secrets or bodies).
func New(client *ent.Client, box *secretbox.Box, guard *netguard.Guard, cfg Config, hooks Hooks, log *slog.Logger) *Dispatcher {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		client:      client,
		box:         box,
		cfg:         cfg,
		hooks:       hooks,
		log:         log.With("component", "dispatch"),
		claimBudget: 64 * cfg.Workers,
		laneBudget:  64 * cfg.PerWebhookInFlight,
		wake:        make(chan struct{}, 1),
		global:      make(chan struct{}, cfg.Workers),
		done:        make(chan struct{}),
	}
	d.claimBudget = max(d.claimBudget, d.laneBudget)
	d.inbox = newResultInbox()
	d.wire = newWireClient(guard, max(cfg.Workers, cfg.PerWebhookInFlight), 4*cfg.Workers)
	d.co = newCoordinator()
	return d
}

// Start starts the coordinator; deliveries are claimed from now on. ctx supplies values for the
// dispatcher's work; cancelling it stops claiming, as Stop does, but only Stop waits for the work
// in flight. Start is a no-op after the first call.
func (d *Dispatcher) Start(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started {
		return
	}
	d.started = true
	base := context.WithoutCancel(ctx)
	d.quitCtx, d.quit = context.WithCancel(base)
	d.jobCtx, d.cancelJobs = context.WithCancel(base)
	d.dbCtx, d.cancelDB = context.WithCancel(base)
	go d.run(ctx)
}

// releaseTimeout bounds the transaction that releases the claims of aborted requests at Stop.
const releaseTimeout = 5 * time.Second

// Stop stops claiming, lets the requests in flight finish for up to ShutdownTimeout (or until
// ctx is done), aborts the rest and releases their claims, so those deliveries stay PENDING and
// any instance picks them up at once. Deliveries claimed but not yet sent are released right
// away. Stop returns when the dispatcher has stopped; calling it again is harmless.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.mu.Lock()
	started := d.started
	d.mu.Unlock()
	if !started {
		return nil
	}
	d.quit()
	defer d.wire.closeIdle(true) // after the jobs: none is left to use a connection
	grace := time.NewTimer(d.cfg.ShutdownTimeout)
	defer grace.Stop()
	select {
	case <-d.done:
		d.jobs.Wait()
		return nil
	case <-grace.C:
	case <-ctx.Done():
	}
	d.cancelJobs()
	force := time.NewTimer(releaseTimeout)
	defer force.Stop()
	var err error
	select {
	case <-d.done:
	case <-force.C:
		d.cancelDB()
		<-d.done
		err = errors.New("stop dispatcher: claims not released in time; they expire with their lease")
	}
	d.jobs.Wait()
	return err
}

// WebhookChanged tells the dispatcher that a webhook was updated, disabled, had its secret
// rotated or was deleted (call it after the commit): its requests claimed and not yet sent are
// given back rather than sent with what it was before, and claimed again if it is active. It
// never blocks.
func (d *Dispatcher) WebhookChanged(id int) {
	if l, ok := d.lanesByID.Load(id); ok {
		l.(*lane).disabled.Store(true)
	}
	d.Wake()
}

// Wake tells the dispatcher that deliveries may be due now (call it after committing new
// deliveries). It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}
