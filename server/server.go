// Package server is eventgate's composition root: it opens the database, wires the domain
// services, the GraphQL executor and its transports, the dispatcher and the HTTP router, and runs
// them until the context ends, then shuts down gracefully.
package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql/executor"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/delivery"
	"github.com/eventgate/eventgate/ent/setting"
	"github.com/eventgate/eventgate/graph"
	"github.com/eventgate/eventgate/graph/generated"
	"github.com/eventgate/eventgate/server/auth"
	"github.com/eventgate/eventgate/server/config"
	"github.com/eventgate/eventgate/server/dispatch"
	"github.com/eventgate/eventgate/server/eventbus"
	"github.com/eventgate/eventgate/server/events"
	"github.com/eventgate/eventgate/server/metrics"
	"github.com/eventgate/eventgate/server/netguard"
	"github.com/eventgate/eventgate/server/pgnotify"
	"github.com/eventgate/eventgate/server/secretbox"
	"github.com/eventgate/eventgate/server/store"
	"github.com/eventgate/eventgate/server/webhooks"
)

// Version is reported in the User-Agent of webhook requests.
const Version = "0.1.0"

// App is a wired eventgate instance.
type App struct {
	cfg        *config.Config
	log        *slog.Logger
	store      *store.Store
	auth       *auth.Service
	events     *events.Service
	webhooks   *webhooks.Service
	dispatcher *dispatch.Dispatcher
	handler    http.Handler
	transports *transports
	metrics    *metrics.Metrics
	// relay carries commits between instances (PostgreSQL only).
	relay *pgnotify.Relay
	// listenerPID is the backend pid of the relay's LISTEN connection (for tests that cut it).
	listenerPID atomic.Uint32
}

// Open connects to the database, migrates it, bootstraps the admin token (printing it to out
// when it was generated) and wires every part. It starts nothing.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger, out io.Writer) (*App, error) {
	st, err := store.Open(ctx, store.Options{DatabaseURL: cfg.DatabaseURL, DataDir: cfg.DataDir, SQLiteSync: cfg.SQLiteSync, MaxConns: cfg.DatabaseMaxConns})
	if err != nil {
		return nil, err
	}
	app, err := wire(ctx, cfg, log, st, out)
	if err != nil {
		st.Close()
		return nil, err
	}
	return app, nil
}

func wire(ctx context.Context, cfg *config.Config, log *slog.Logger, st *store.Store, out io.Writer) (*App, error) {
	authSvc := auth.NewService(st.Client, log)
	var box *secretbox.Box
	var secret string
	// Instances starting together take turns: one migrates and bootstraps, the others then see it done.
	err := st.WithLock(ctx, func() error {
		if err := st.Migrate(ctx); err != nil {
			return err
		}
		var err error
		if box, err = openSecretBox(ctx, cfg, st.Client); err != nil {
			return err
		}
		secret, err = authSvc.Bootstrap(ctx, cfg.AdminToken)
		return err
	})
	if err != nil {
		return nil, err
	}
	if secret != "" && cfg.AdminToken == "" {
		fmt.Fprintf(out, "\nAdmin token (shown once, store it now):\n\n    %s\n\n", secret)
	}

	guard := netguard.New(cfg.AllowedTargets, nil)
	mtr := metrics.New()
	eventBus := eventbus.New[*ent.Event]()
	deliveryBus := eventbus.New[*ent.Delivery]()
	eventSvc := events.NewService(st.Client, eventBus, deliveryBus, events.Options{
		PublishRate: cfg.PublishRate, PublishBurst: cfg.PublishBurst, Retention: cfg.EventRetention,
		Shared:   st.IsPostgres(),
		OnStored: func(e *ent.Event) { mtr.EventPublished(e.Type) },
	}, log)
	webhookSvc := webhooks.NewService(st.Client, box, guard)

	app := &App{cfg: cfg, log: log, store: st, auth: authSvc, events: eventSvc, webhooks: webhookSvc, metrics: mtr}
	host, _ := os.Hostname()
	app.dispatcher = dispatch.New(st.Client, box, guard, dispatch.Config{
		Dialect:         st.Dialect,
		Workers:         cfg.Workers,
		Lease:           cfg.DeliveryLease,
		Schedule:        cfg.RetrySchedule,
		UserAgent:       "eventgate/" + Version,
		InstanceID:      fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()),
		ShutdownTimeout: cfg.ShutdownTimeout,
	}, dispatch.Hooks{
		DeliveriesChanged: func(ctx context.Context, ds []*ent.Delivery) {
			for _, d := range ds {
				if d.Status != delivery.StatusPENDING {
					mtr.DeliveryFinished(string(d.Status))
				}
			}
			eventSvc.PublishDeliveryChanges(ctx, ds...)
		},
		WebhookDisabled: app.webhookDisabled,
		AttemptFinished: mtr.Attempt,
	}, log)
	eventSvc.SetNotifier(app.dispatcher)
	webhookSvc.SetDeliveryListener(func(ds []*ent.Delivery) {
		eventSvc.PublishDeliveryChanges(context.Background(), ds...)
		app.dispatcher.Wake()
	})
	webhookSvc.SetActivatedListener(app.dispatcher.Wake)
	webhookSvc.SetChangedListener(app.dispatcher.WebhookChanged)
	if st.IsPostgres() {
		app.relay = pgnotify.New(st.URL, st.Client, eventBus, deliveryBus, app.dispatcher.Wake, log)
		app.relay.OnConnect(app.listenerPID.Store)
		if err := app.relay.Start(ctx); err != nil {
			return nil, err
		}
	}

	exec := executor.New(generated.NewExecutableSchema(generated.Config{Resolvers: &graph.Resolver{
		Client: st.Client, Auth: authSvc, WebhookService: webhookSvc, EventService: eventSvc,
		Log: log, SubscriptionBuffer: cfg.SubscriptionBuffer,
	}, Complexity: graph.Complexity()}))
	// Parsed and validated documents are shared by every operation with the same text: thousands
	// of identical subscriptions then cost one parse and one copy of the AST.
	exec.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	exec.SetErrorPresenter(graph.ErrorPresenter(log))
	exec.SetRecoverFunc(graph.Recover(log))
	if cfg.Introspection {
		exec.Use(extension.Introspection{})
	}
	exec.Use(extension.FixedComplexityLimit(cfg.MaxComplexity))
	exec.Use(graph.DepthLimit(cfg.MaxDepth))
	exec.AroundFields(graph.RequireScopes)
	exec.AroundFields(graph.RenderWebhookItems)

	app.transports = newTransports(cfg, log, authSvc)
	app.registerGauges()
	app.handler = app.routes(exec)
	return app, nil
}

// webhookDisabled publishes the webhook.disabled event after the dispatcher disabled a webhook.
func (a *App) webhookDisabled(ctx context.Context, w *ent.Webhook, reason string) {
	payload := map[string]any{"webhook_id": fmt.Sprint(w.ID), "reason": reason}
	if _, _, err := a.events.Emit(context.WithoutCancel(ctx), "webhook.disabled", payload, nil); err != nil {
		a.log.Error("publish webhook.disabled", "webhook_id", w.ID, "err", err)
	}
}

// Handler is the HTTP handler of the instance (for tests that serve it themselves).
func (a *App) Handler() http.Handler { return a.handler }

// Start starts the background work: dispatcher and retention.
func (a *App) Start(ctx context.Context) {
	if a.relay != nil {
		go a.relay.Run(ctx)
	}
	a.dispatcher.Start(ctx)
	go a.events.RunRetention(ctx, time.Minute)
}

// CloseStreams closes every open WebSocket with 1001 (going away).
func (a *App) CloseStreams(ctx context.Context) { a.transports.shutdown(ctx) }

// Close stops background work and releases the database. Streams get 1001.
func (a *App) Close(ctx context.Context) error {
	a.transports.shutdown(ctx)
	err := a.dispatcher.Stop(ctx)
	return errors.Join(err, a.store.Close())
}

// Run serves until ctx ends, then shuts down: stop accepting, close sockets with 1001, finish
// in-flight deliveries up to the shutdown timeout, leave the rest queued.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, out io.Writer) error {
	app, err := Open(ctx, cfg, log, out)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		app.Close(context.Background())
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	fmt.Fprintf(out, "eventgate %s listening on http://%s — GraphiQL at http://%s/graphiql, GraphQL at /query\n", Version, ln.Addr(), ln.Addr())
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	app.Start(runCtx)
	// Streams (SSE) end with their request context, so requests hang off a context that
	// shutdown cancels.
	baseCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv := &http.Server{Handler: app.handler, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return baseCtx }}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if cfg.MetricsAddr != "" && cfg.MetricsAddr != "off" {
		msrv := &http.Server{Addr: cfg.MetricsAddr, Handler: app.metrics.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := msrv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener", "addr", cfg.MetricsAddr, "err", err)
			}
		}()
		defer msrv.Close()
	}
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout+5*time.Second)
	defer cancel()
	app.transports.shutdown(shutdownCtx)
	cancelRequests()
	// Requests in flight get a few seconds; connections that never sent a request (which
	// Shutdown would wait out for 5 s) are simply closed after that.
	httpCtx, httpCancel := context.WithTimeout(shutdownCtx, 3*time.Second)
	if serr := srv.Shutdown(httpCtx); serr != nil {
		srv.Close()
	}
	httpCancel()
	stop()
	if cerr := app.Close(shutdownCtx); cerr != nil {
		log.Error("shutdown", "err", cerr)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// secretKeyFingerprint is the settings key of the secret key's fingerprint.
const secretKeyFingerprint = "secret_key_fingerprint"

// openSecretBox loads the secret key and proves it is the one the database was written with.
func openSecretBox(ctx context.Context, cfg *config.Config, client *ent.Client) (*secretbox.Box, error) {
	var key []byte
	var err error
	switch {
	case cfg.SecretKey != "":
		key, err = secretbox.ParseKey(cfg.SecretKey)
	case cfg.DatabaseURL != "":
		return nil, errors.New("EVENTGATE_SECRET_KEY is required with PostgreSQL (every instance must use the same key)")
	default:
		key, err = secretbox.LoadOrCreateKeyFile(cfg.DataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("EVENTGATE_SECRET_KEY: %w", err)
	}
	box, err := secretbox.New(key)
	if err != nil {
		return nil, err
	}
	stored, err := client.Setting.Query().Where(setting.Key(secretKeyFingerprint)).Only(ctx)
	switch {
	case ent.IsNotFound(err):
		if err := client.Setting.Create().SetKey(secretKeyFingerprint).SetValue(box.Fingerprint()).
			OnConflictColumns(setting.FieldKey).DoNothing().Exec(ctx); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("record secret key fingerprint: %w", err)
		}
		return openSecretBoxCheck(ctx, client, box)
	case err != nil:
		return nil, fmt.Errorf("read secret key fingerprint: %w", err)
	case stored.Value != box.Fingerprint():
		return nil, errors.New("EVENTGATE_SECRET_KEY does not match the key this database was written with")
	}
	return box, nil
}

// openSecretBoxCheck re-reads the fingerprint after recording it: another instance may have won.
func openSecretBoxCheck(ctx context.Context, client *ent.Client, box *secretbox.Box) (*secretbox.Box, error) {
	stored, err := client.Setting.Query().Where(setting.Key(secretKeyFingerprint)).Only(ctx)
	if err != nil {
		return nil, fmt.Errorf("read secret key fingerprint: %w", err)
	}
	if stored.Value != box.Fingerprint() {
		return nil, errors.New("EVENTGATE_SECRET_KEY does not match the key this database was written with")
	}
	return box, nil
}

// ListenerPID returns the PostgreSQL backend pid of the notification connection (0 before it
// connects, or with SQLite).
func (a *App) ListenerPID() uint32 { return a.listenerPID.Load() }

// PruneEvents applies the retention period now (it also runs every minute).
func (a *App) PruneEvents(ctx context.Context) (int, error) { return a.events.Prune(ctx) }

// registerGauges exposes the delivery backlog and the streaming transports' state.
func (a *App) registerGauges() {
	a.metrics.RegisterBacklog(func(ctx context.Context) (int, time.Duration, error) {
		q := a.store.Client.Delivery.Query().Where(delivery.StatusEQ(delivery.StatusPENDING))
		n, err := q.Clone().Count(ctx)
		if err != nil || n == 0 {
			return n, 0, err
		}
		oldest, err := q.Order(ent.Asc(delivery.FieldCreatedAt)).First(ctx)
		if err != nil {
			return n, 0, err
		}
		return n, time.Since(oldest.CreatedAt), nil
	}, a.log)
	ws, sse := a.transports.ws, a.transports.sse
	a.metrics.Gauge("eventgate_websocket_connections", "Open WebSocket connections.",
		func() float64 { return float64(ws.Stats().Connections) })
	a.metrics.Gauge("eventgate_websocket_operations", "Active operations (subscriptions) on WebSockets.",
		func() float64 { return float64(ws.Stats().Operations) })
	a.metrics.Counter("eventgate_slow_consumer_drops_total", "Subscriptions ended with SLOW_CONSUMER (WebSocket and SSE).",
		func() float64 { return float64(ws.Stats().SlowConsumers + sse.Stats().SlowConsumers) })
}
