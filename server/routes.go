package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/eventgate/eventgate/server/auth"
	"github.com/eventgate/eventgate/server/config"
	"github.com/eventgate/eventgate/server/graphiql"
	"github.com/eventgate/eventgate/server/httpgraphql"
	"github.com/eventgate/eventgate/server/ssegraphql"
	"github.com/eventgate/eventgate/server/wsgraphql"
)

// transports are the ways /query is spoken, tried in order.
type transports struct {
	ws   *wsgraphql.Transport
	sse  *ssegraphql.Transport
	http *httpgraphql.Transport
}

func newTransports(cfg *config.Config, log *slog.Logger, authSvc *auth.Service) *transports {
	return &transports{
		ws: wsgraphql.New(wsgraphql.Config{
			QueueSize:   cfg.SubscriptionBuffer,
			CheckOrigin: originChecker(cfg.AllowedOrigins),
			Authenticate: func(ctx context.Context, upgrade http.Header, payload map[string]any) (context.Context, error) {
				token, ok := initToken(upgrade, payload)
				if !ok {
					return nil, auth.ErrInvalidToken
				}
				p, err := authSvc.Authenticate(ctx, token)
				if err != nil {
					return nil, err
				}
				return auth.WithPrincipal(ctx, p), nil
			},
			Recheck: authSvc.Recheck,
			Logger:  log,
		}),
		sse:  ssegraphql.New(ssegraphql.Config{QueueSize: cfg.SubscriptionBuffer, Recheck: authSvc.Recheck, Logger: log}),
		http: httpgraphql.New(httpgraphql.Config{Logger: log}),
	}
}

func (t *transports) shutdown(ctx context.Context) { _ = t.ws.Shutdown(ctx) }

// serve picks the transport for r.
func (t *transports) serve(exec graphql.GraphExecutor) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, tr := range []graphql.Transport{t.ws, t.sse, t.http} {
			if tr.Supports(r) {
				tr.Do(w, r, exec)
				return
			}
		}
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	})
}

// initToken finds the bearer token of a WebSocket: connection_init's Authorization,
// authorization or token key, else the upgrade request's Authorization header.
func initToken(upgrade http.Header, payload map[string]any) (string, bool) {
	for _, key := range []string{"Authorization", "authorization"} {
		if v, ok := payload[key].(string); ok {
			return auth.BearerToken(v)
		}
	}
	if v, ok := payload["token"].(string); ok && v != "" {
		return v, true
	}
	return auth.BearerToken(upgrade.Get("Authorization"))
}

func (a *App) routes(exec graphql.GraphExecutor) http.Handler {
	r := chi.NewRouter()
	r.Use(requestID, a.accessLog, middleware.Recoverer, cors(a.cfg.AllowedOrigins))
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", a.ready)
	if a.cfg.MetricsAddr == "" {
		r.Handle("/metrics", a.metrics.Handler())
	}
	page := graphiql.Handler(graphiql.Config{Title: "eventgate", Endpoint: "/query"})
	r.Method(http.MethodGet, "/", page)
	r.Method(http.MethodGet, "/graphiql", page)
	r.Method(http.MethodGet, graphiql.DefaultAssetsPath+"*", page)
	r.Method(http.MethodHead, graphiql.DefaultAssetsPath+"*", page)
	r.With(a.authenticate(graphqlUnauthenticated)).Handle("/query", a.transports.serve(exec))
	r.With(a.authenticate(restUnauthenticated)).Post("/v1/events", a.restPublish)
	return r
}

func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unreachable"})
		return
	}
	if pending, err := a.store.Pending(ctx); err != nil || len(pending) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "migrations pending"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// authenticate requires a bearer token in the Authorization header, except for WebSocket
// upgrades (they authenticate in connection_init) and CORS preflights. Tokens in the URL are
// never read.
func (a *App) authenticate(unauthenticated func(http.ResponseWriter, *http.Request, string)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodOptions || isWebSocketUpgrade(r) {
				next.ServeHTTP(w, r)
				return
			}
			token, ok := auth.BearerToken(r.Header.Get("Authorization"))
			if !ok {
				unauthenticated(w, r, "a bearer token is required in the Authorization header")
				return
			}
			p, err := a.auth.Authenticate(r.Context(), token)
			if err != nil {
				if auth.IsInvalidToken(err) {
					unauthenticated(w, r, "invalid, revoked or expired bearer token")
					return
				}
				a.log.Error("authenticate", "err", err)
				http.Error(w, "internal server error", http.StatusInternalServerError)
				return
			}
			next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), p)))
		})
	}
}

func isWebSocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// graphqlUnauthenticated answers 401 with a GraphQL error body.
func graphqlUnauthenticated(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="eventgate"`)
	ct := "application/json; charset=utf-8"
	if strings.Contains(r.Header.Get("Accept"), "application/graphql-response+json") {
		ct = "application/graphql-response+json; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{
		"message": msg, "extensions": map[string]any{"code": "UNAUTHENTICATED"},
	}}})
}

func restUnauthenticated(w http.ResponseWriter, _ *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="eventgate"`)
	writeJSON(w, http.StatusUnauthorized, restError{Error: restErrorBody{Code: "UNAUTHENTICATED", Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type requestIDKey struct{}

// requestID gives every request an id (kept from X-Request-Id when sane) for the logs.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// accessLog logs each request without its query string or headers (no tokens in logs).
func (a *App) accessLog(next http.Handler) http.Handler {
	log := a.log.With("component", "http")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		id, _ := r.Context().Value(requestIDKey{}).(string)
		log.Info("request", "request_id", id, "method", r.Method, "path", r.URL.Path,
			"status", ww.Status(), "duration_ms", time.Since(start).Milliseconds())
	})
}

// cors answers preflights and sets CORS headers for the allowed origins.
func cors(allowed []string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin != "" && slices.Contains(allowed, origin) {
				h := w.Header()
				h.Set("Access-Control-Allow-Origin", origin)
				h.Add("Vary", "Origin")
				if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
					h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
					h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept")
					h.Set("Access-Control-Max-Age", "600")
					w.WriteHeader(http.StatusNoContent)
					return
				}
			}
			if r.Method == http.MethodOptions {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// originChecker allows WebSockets without an Origin (non-browser clients), from the same host,
// or from an allowed origin.
func originChecker(allowed []string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" || slices.Contains(allowed, origin) {
			return true
		}
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
}
