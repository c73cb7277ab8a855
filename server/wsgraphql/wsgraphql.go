// Package wsgraphql is eventgate's WebSocket transport for gqlgen, on gorilla/websocket. It
// speaks both GraphQL sub-protocols of DESIGN.md §5: `graphql-transport-ws` (the graphql-ws
// library's protocol, with its close codes) and the legacy `graphql-ws` of
// subscriptions-transport-ws. It authenticates in connection_init (§4), re-checks that
// authentication periodically so revoked or expired tokens lose their sockets, and bounds what
// each subscription may queue (server/substream) so that a slow client is dropped with
// SLOW_CONSUMER instead of slowing anyone else.
//
// An idle connection holds one goroutine, its reader, and one timer; a writer goroutine runs
// only while frames are pending, and a subscription runs on its resolver's goroutine
// (server/substream). Do returns right after the upgrade, so the HTTP server's goroutine and
// buffers of that connection are released, and write buffers come from a shared pool: an idle
// subscribed socket costs a few kilobytes.
package wsgraphql

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/server/streamctl"
	"github.com/eventgate/eventgate/server/substream"
)

// Sub-protocol names.
const (
	// ProtocolTransportWS is the graphql-ws library's protocol (Apollo GraphQLWsLink, urql, GraphiQL).
	ProtocolTransportWS = "graphql-transport-ws"
	// ProtocolLegacyWS is subscriptions-transport-ws's protocol (Apollo WebSocketLink).
	ProtocolLegacyWS = "graphql-ws"
)

// Close codes of graphql-transport-ws (and reused by the legacy protocol where they fit).
const (
	CloseBadRequest        = 4400 // invalid JSON, unknown message type, malformed message
	CloseUnauthorized      = 4401 // subscribe before connection_ack
	CloseForbidden         = 4403 // connection_init rejected, or authentication no longer valid
	CloseProtocolRejected  = 4406 // no sub-protocol, or none eventgate speaks
	CloseInitTimeout       = 4408 // no connection_init within Config.InitTimeout
	CloseSubscriberExists  = 4409 // subscribe with an id that is still active
	CloseTooManyInitialise = 4429 // a second connection_init
)

// Defaults of Config (those it shares with SSE come from substream).
const (
	DefaultInitTimeout       = 3 * time.Second
	DefaultPingInterval      = 15 * time.Second
	DefaultKeepAliveInterval = substream.DefaultKeepAliveInterval
	DefaultWriteTimeout      = substream.DefaultWriteTimeout
	DefaultReadLimit         = substream.DefaultReadLimit
	DefaultQueueSize         = substream.DefaultQueueSize
	DefaultRecheckInterval   = substream.DefaultRecheckInterval
)

// closeGrace is how long a socket we are closing waits for the peer's close frame before the
// TCP connection is cut; waiting avoids resetting a connection with the close frame unread.
const closeGrace = 2 * time.Second

// Buffer sizes; larger messages are simply sent or read in several steps. Clients send little
// (connection_init, subscribe, pong), and every socket keeps its read buffer for its lifetime,
// so that one is small; write buffers are pooled, held only while a message is written.
const (
	readBufferSize  = 256
	writeBufferSize = 1024
)

// Config configures a Transport. Zero fields take the documented defaults.
type Config struct {
	// InitTimeout is how long a client has to send connection_init (default 3 s); then 4408.
	InitTimeout time.Duration
	// PingInterval is how often graphql-transport-ws connections are pinged (default 15 s);
	// a peer that answers none of two pings is dropped.
	PingInterval time.Duration
	// KeepAliveInterval is how often legacy connections get `ka` (default 15 s). A WebSocket
	// ping goes with each; a peer that answers none of two is dropped.
	KeepAliveInterval time.Duration
	// WriteTimeout bounds every write (default 10 s); a socket blocked past it is dropped.
	WriteTimeout time.Duration
	// ReadLimit is the largest message accepted from a client (default 1 MiB); larger ones
	// close the socket with 1009.
	ReadLimit int64
	// QueueSize is how many frames each operation may queue (default 256); a live frame that
	// finds the queue full ends the subscription with SLOW_CONSUMER.
	QueueSize int
	// RecheckInterval is how often Recheck runs (default 2 s).
	RecheckInterval time.Duration
	// CheckOrigin says whether the upgrade's Origin is allowed; nil allows requests without
	// an Origin header and same-origin ones.
	CheckOrigin func(r *http.Request) bool
	// Authenticate validates connection_init. It gets the upgrade request's headers and the
	// init payload (nil when absent) and returns the context every operation of the connection
	// runs in (carrying the principal); an error closes the socket with 4403. Nil accepts
	// every connection with the upgrade request's context.
	Authenticate func(ctx context.Context, upgrade http.Header, initPayload map[string]any) (context.Context, error)
	// Recheck is called every RecheckInterval with the context Authenticate returned; an
	// error (token revoked or expired) closes the socket with 4403. It runs on the
	// connection's timer, which waits for it, so it should be cheap. Nil disables it.
	Recheck func(ctx context.Context) error
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	c.InitTimeout = substream.Or(c.InitTimeout, DefaultInitTimeout)
	c.PingInterval = substream.Or(c.PingInterval, DefaultPingInterval)
	c.KeepAliveInterval = substream.Or(c.KeepAliveInterval, DefaultKeepAliveInterval)
	c.WriteTimeout = substream.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.ReadLimit = substream.Or(c.ReadLimit, DefaultReadLimit)
	c.QueueSize = substream.Or(c.QueueSize, DefaultQueueSize)
	c.RecheckInterval = substream.Or(c.RecheckInterval, DefaultRecheckInterval)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Transport is a gqlgen graphql.Transport for WebSocket upgrades on a GraphQL endpoint.
type Transport struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader
	stats    substream.Stats
	ops      atomic.Int64
	// render shares item renderings among subscriptions of the same operation.
	render *streamctl.RenderCache
	// batchBufs holds the buffers of batchConns between batches, so an idle socket has none.
	batchBufs sync.Pool

	mu       sync.Mutex
	conns    map[*conn]struct{}
	shutdown bool
}

var _ graphql.Transport = (*Transport)(nil)

// renderCacheSize bounds the item renderings kept for sharing among subscriptions.
const renderCacheSize = 4096

// New returns a Transport configured by cfg.
func New(cfg Config) *Transport {
	cfg = cfg.withDefaults()
	t := &Transport{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "wsgraphql"),
		conns:  make(map[*conn]struct{}),
		render: streamctl.NewRenderCache(renderCacheSize),
	}
	t.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.WriteTimeout,
		ReadBufferSize:   readBufferSize,
		WriteBufferSize:  writeBufferSize,
		// One pool per transport: buffers are held only while a message is being written,
		// which is what keeps thousands of idle sockets cheap.
		WriteBufferPool: &sync.Pool{},
		Subprotocols:    []string{ProtocolTransportWS, ProtocolLegacyWS},
		CheckOrigin:     cfg.CheckOrigin,
	}
	return t
}

// Supports reports whether r is a WebSocket upgrade request.
func (t *Transport) Supports(r *http.Request) bool {
	return websocket.IsWebSocketUpgrade(r)
}

// Do upgrades the request and starts serving the connection; it returns without waiting for
// the connection to end. Operations run in a context with the request context's values but
// not its cancellation (which comes when Do returns).
func (t *Transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	var batch *batchConn
	hw := hijackWriter{ResponseWriter: w, wrap: func(nc net.Conn) net.Conn {
		batch = newBatchConn(nc, &t.batchBufs, t.cfg.WriteTimeout)
		return batch
	}}
	ws, err := t.upgrader.Upgrade(hw, r, nil)
	if err != nil {
		// The upgrader has already answered with an HTTP error.
		t.log.Debug("websocket upgrade refused", "err", err)
		return
	}
	c := newConn(t, ws, r, exec, batch)
	registered := t.register(c)
	// The connection runs on its own goroutines, owned by t (Shutdown ends them): returning
	// frees the HTTP server's per-connection state, which is most of an idle socket's cost.
	go c.serve(registered)
}

// Stats is a snapshot of a Transport's activity.
type Stats struct {
	// Connections is the number of open sockets.
	Connections int
	// Operations is the number of operations being executed.
	Operations int
	// SlowConsumers counts subscriptions ended with SLOW_CONSUMER.
	SlowConsumers int64
	// PeakQueued is the most frames any operation's queue held at once (never above QueueSize).
	PeakQueued int
}

// Stats returns a snapshot of the transport's activity, for metrics.
func (t *Transport) Stats() Stats {
	t.mu.Lock()
	n := len(t.conns)
	t.mu.Unlock()
	return Stats{
		Connections:   n,
		Operations:    int(t.ops.Load()),
		SlowConsumers: t.stats.SlowConsumers(),
		PeakQueued:    t.stats.Peak(),
	}
}

// Shutdown closes every open socket with 1001 and makes later upgrades close with 1001 right
// away. It waits for the sockets to end (their peers have a short grace to answer the close)
// or for ctx, whichever comes first, and then returns ctx's error if any socket remained.
func (t *Transport) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	t.shutdown = true
	open := make([]*conn, 0, len(t.conns))
	for c := range t.conns {
		open = append(open, c)
	}
	t.mu.Unlock()
	for _, c := range open {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
	for _, c := range open {
		select {
		case <-c.ended:
		case <-ctx.Done():
			for _, c := range open {
				c.kill()
			}
			return ctx.Err()
		}
	}
	return nil
}

// register adds c to the open connections; false once the transport is shutting down.
func (t *Transport) register(c *conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shutdown {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Transport) unregister(c *conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}
