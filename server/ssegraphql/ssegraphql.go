// Package ssegraphql is eventgate's Server-Sent Events transport for gqlgen: the "distinct
// connections" mode of the graphql-sse protocol (one operation per HTTP request, GET or POST
// with `Accept: text/event-stream`). Results stream as `event: next` frames and end with
// `event: complete`; a request that does not parse or validate gets HTTP 400 with a JSON body
// before any streaming, and a mutation over GET gets 405.
//
// It applies the same backpressure policy as the WebSocket transport (DESIGN.md §5, through
// server/substream): a subscriber whose bounded queue overflows gets a SLOW_CONSUMER error with
// the cursor to resume from, every write has a deadline, and the authentication established by
// the HTTP middleware is re-checked periodically so revoked tokens lose their streams.
package ssegraphql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventgate/eventgate/server/httpgraphql"
	"github.com/eventgate/eventgate/server/streamctl"
	"github.com/eventgate/eventgate/server/substream"
)

// Defaults of Config (shared with the WebSocket transport).
const (
	DefaultQueueSize         = substream.DefaultQueueSize
	DefaultWriteTimeout      = substream.DefaultWriteTimeout
	DefaultKeepAliveInterval = substream.DefaultKeepAliveInterval
	DefaultRecheckInterval   = substream.DefaultRecheckInterval
	DefaultReadLimit         = substream.DefaultReadLimit
)

// Config configures a Transport. Zero fields take the documented defaults.
type Config struct {
	// QueueSize is how many frames a stream may queue (default 256); a live frame that finds
	// the queue full ends the subscription with SLOW_CONSUMER.
	QueueSize int
	// WriteTimeout bounds every write (default 10 s); a stream blocked past it is dropped.
	WriteTimeout time.Duration
	// KeepAliveInterval is how often a comment line keeps an idle stream open through
	// proxies (default 15 s).
	KeepAliveInterval time.Duration
	// RecheckInterval is how often Recheck runs (default 2 s).
	RecheckInterval time.Duration
	// Recheck is called every RecheckInterval with the request's context (which carries the
	// principal the HTTP middleware established); an error ends the stream with an
	// UNAUTHENTICATED error. Nil disables it.
	Recheck func(ctx context.Context) error
	// ReadLimit is the largest POST body accepted (default 1 MiB).
	ReadLimit int64
	// Logger receives stream-level events; nil discards them.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	c.QueueSize = substream.Or(c.QueueSize, DefaultQueueSize)
	c.WriteTimeout = substream.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.KeepAliveInterval = substream.Or(c.KeepAliveInterval, DefaultKeepAliveInterval)
	c.RecheckInterval = substream.Or(c.RecheckInterval, DefaultRecheckInterval)
	c.ReadLimit = substream.Or(c.ReadLimit, DefaultReadLimit)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Transport is a gqlgen graphql.Transport for `Accept: text/event-stream` requests.
type Transport struct {
	cfg   Config
	log   *slog.Logger
	stats substream.Stats
	// render shares item renderings among streams of the same operation.
	render *streamctl.RenderCache
}

var _ graphql.Transport = (*Transport)(nil)

// renderCacheSize bounds the item renderings kept for sharing among streams.
const renderCacheSize = 4096

// New returns a Transport configured by cfg.
func New(cfg Config) *Transport {
	cfg = cfg.withDefaults()
	return &Transport{cfg: cfg, log: cfg.Logger.With("component", "ssegraphql"), render: streamctl.NewRenderCache(renderCacheSize)}
}

// Supports reports whether the client asked for an event stream: its Accept names
// text/event-stream and prefers it to the JSON media types. A client that merely also
// accepts a stream (urql lists it after the JSON types on every query) gets JSON from the
// HTTP transport, which applies the same rule.
func (t *Transport) Supports(r *http.Request) bool {
	return httpgraphql.PrefersEventStream(r.Header.Values("Accept"))
}

// Stats is a snapshot of a Transport's activity.
type Stats struct {
	// SlowConsumers counts streams ended with SLOW_CONSUMER.
	SlowConsumers int64
	// PeakQueued is the most frames any stream's queue held at once (never above QueueSize).
	PeakQueued int
}

// Stats returns a snapshot of the transport's activity, for metrics.
func (t *Transport) Stats() Stats {
	return Stats{SlowConsumers: t.stats.SlowConsumers(), PeakQueued: t.stats.Peak()}
}

var (
	frameComplete  = []byte("event: complete\ndata:\n\n")
	frameKeepAlive = []byte(":\n\n")
)

// Do executes the request's operation and streams its results.
func (t *Transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	start := graphql.Now()
	params, status, err := t.readParams(w, r)
	if err != nil {
		if status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", "GET, POST")
		}
		writeErrors(w, status, gqlerror.List{{Message: err.Error()}})
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	ctx := graphql.StartOperationTrace(r.Context())
	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		writeErrors(w, http.StatusBadRequest, resp.Errors)
		return
	}
	if r.Method == http.MethodGet && rc.Operation.Operation == ast.Mutation {
		w.Header().Set("Allow", "POST")
		writeErrors(w, http.StatusMethodNotAllowed, gqlerror.List{{Message: "mutations cannot be sent over GET"}})
		return
	}
	t.stream(w, r, exec, ctx, rc)
}

// stream runs the operation on its own goroutine while this one writes.
func (t *Transport) stream(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, ctx context.Context, rc *graphql.OperationContext) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	// nginx buffers responses unless told otherwise, which would hold events back.
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctl := http.NewResponseController(w)
	if !t.write(w, ctl, nil, nil) {
		return
	}

	ctx, cancel := context.WithCancel(ctx)
	wake := make(chan struct{}, 1)
	q := substream.NewQueue(t.cfg.QueueSize, &t.stats, func() { wakeUp(wake) })
	pumpDone := make(chan struct{})
	go func() {
		defer close(pumpDone)
		defer cancel()
		substream.Run(ctx, exec, rc, q, encoder{}, t.render, t.log)
	}()
	defer func() {
		cancel()
		<-pumpDone
	}()

	keepAlive := time.NewTicker(t.cfg.KeepAliveInterval)
	defer keepAlive.Stop()
	var recheck <-chan time.Time
	if t.cfg.Recheck != nil {
		tk := time.NewTicker(t.cfg.RecheckInterval)
		defer tk.Stop()
		recheck = tk.C
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-keepAlive.C:
			if !t.write(w, ctl, frameKeepAlive, nil) {
				return
			}
			continue
		case <-recheck:
			if err := t.cfg.Recheck(r.Context()); err != nil {
				t.log.Info("event stream authentication no longer valid", "err", err)
				q.Abort(encodeErrorEnd(&gqlerror.Error{
					Message:    "authentication is no longer valid",
					Extensions: map[string]any{"code": "UNAUTHENTICATED"},
				}))
				cancel()
			}
		case <-wake:
		}
		for n := 0; ; n++ {
			if n == flushBatch {
				// Let the timers run between batches of a busy stream, and come back.
				wakeUp(wake)
				break
			}
			f, st, more := q.Pop()
			switch st {
			case substream.Data:
				if !t.write(w, ctl, f.Data, f.Tail) {
					return
				}
			case substream.Final:
				t.write(w, ctl, f.Data, nil)
				return
			case substream.Slow:
				t.log.Info("event stream dropped: slow consumer", "cursor", f.Cursor)
				t.write(w, ctl, encodeErrorEnd(substream.SlowConsumerError(f.Cursor)), nil)
				return
			}
			if !more {
				break
			}
		}
	}
}

// flushBatch is how many frames are written before the keep-alive and recheck timers get a
// turn: a busy stream must not starve the authentication recheck.
const flushBatch = 64

func wakeUp(wake chan struct{}) {
	select {
	case wake <- struct{}{}:
	default:
	}
}

// write writes frame followed by tail (either may be empty) under the write deadline and
// flushes it to the client.
func (t *Transport) write(w http.ResponseWriter, ctl *http.ResponseController, frame, tail []byte) bool {
	// Not every ResponseWriter supports deadlines (httptest's recorder does not); the
	// stream then relies on the server's own timeouts.
	if err := ctl.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return false
	}
	for _, part := range [][]byte{frame, tail} {
		if len(part) == 0 {
			continue
		}
		if _, err := w.Write(part); err != nil {
			t.log.Debug("event stream write failed", "err", err)
			return false
		}
	}
	if err := ctl.Flush(); err != nil {
		t.log.Debug("event stream flush failed", "err", err)
		return false
	}
	return true
}

// readParams reads the operation from the URL (GET) or the JSON body (POST).
func (t *Transport) readParams(w http.ResponseWriter, r *http.Request) (*graphql.RawParams, int, error) {
	params := &graphql.RawParams{}
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		params.Query = q.Get("query")
		params.OperationName = q.Get("operationName")
		if v := q.Get("variables"); v != "" {
			if err := decodeJSON(strings.NewReader(v), &params.Variables); err != nil {
				return nil, http.StatusBadRequest, fmt.Errorf("variables are not a JSON object: %w", err)
			}
		}
		if v := q.Get("extensions"); v != "" {
			if err := decodeJSON(strings.NewReader(v), &params.Extensions); err != nil {
				return nil, http.StatusBadRequest, fmt.Errorf("extensions are not a JSON object: %w", err)
			}
		}
	case http.MethodPost:
		body := http.MaxBytesReader(w, r.Body, t.cfg.ReadLimit)
		if err := decodeJSON(body, params); err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body over %d bytes", t.cfg.ReadLimit)
			}
			return nil, http.StatusBadRequest, fmt.Errorf("request body is not a JSON object: %w", err)
		}
	default:
		return nil, http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method)
	}
	return params, 0, nil
}

// decodeJSON decodes numbers as json.Number, as gqlgen's transports do, so that Int64
// variables keep every digit.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	return dec.Decode(v)
}

// writeErrors answers a request that is refused before streaming with a GraphQL errors body.
func writeErrors(w http.ResponseWriter, status int, errs gqlerror.List) {
	body, err := json.Marshal(map[string]any{"errors": errs})
	if err != nil {
		body = []byte(`{"errors":[{"message":"internal server error"}]}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// encoder writes graphql-sse frames.
type encoder struct{}

// frameNextHead starts every next event.
var frameNextHead = []byte("event: next\ndata: ")

// Shared is the data line's payload (encoded by json.Marshal: no raw newline) and the end of
// the event.
func (encoder) Shared(payload []byte) []byte {
	b := make([]byte, 0, len(payload)+2)
	b = append(b, payload...)
	return append(b, "\n\n"...)
}

// Next is `event: next`, the data line and the end of the event.
func (encoder) Next(shared []byte) substream.Frame {
	return substream.Frame{Data: frameNextHead, Tail: shared}
}

// Error is a terminal error: graphql-sse has no error event, so it is a next carrying the
// errors, then complete.
func (encoder) Error(errs gqlerror.List) []byte {
	return encodeErrorEnd(errs...)
}

func (encoder) Complete() []byte { return frameComplete }

// encodeErrorEnd is `event: next` with {"errors": errs} followed by `event: complete`.
func encodeErrorEnd(errs ...*gqlerror.Error) []byte {
	data, err := json.Marshal(map[string]any{"errors": gqlerror.List(errs)})
	if err != nil {
		data, _ = json.Marshal(map[string]any{"errors": gqlerror.List{substream.InternalError()}})
	}
	b := eventNext(data)
	return append(b, frameComplete...)
}

func eventNext(data []byte) []byte {
	// json.Marshal never emits a raw newline, so the payload fits one data line.
	b := make([]byte, 0, len(data)+20)
	b = append(b, "event: next\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
