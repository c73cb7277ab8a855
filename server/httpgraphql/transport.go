// Package httpgraphql is eventgate's GraphQL-over-HTTP transport: a gqlgen graphql.Transport
// for POST and GET on /query that follows the GraphQL over HTTP specification.
//
// It exists because gqlgen's stock POST/GET transports answer 422 to parse and validation
// errors under application/json, always write "data": null, and accept mutations over GET
// with the wrong status. Here (DESIGN.md §3 "HTTP"):
//
//   - the response media type is negotiated from Accept: application/graphql-response+json
//     when the client prefers it, application/json otherwise (also for */* and no Accept);
//     a client that accepts neither gets 406;
//   - a request that is not well-formed (body not JSON, parameters missing or of the wrong
//     type) is 400 under either media type;
//   - under application/json every GraphQL error (parse, validation, variable coercion,
//     field) is status 200;
//   - under application/graphql-response+json a GraphQL request error (parse, validation,
//     variable coercion) is status 400 and the body has no "data" key; an executed operation
//     is 200 whatever its field errors;
//   - "data" is written only for operations that executed ("data": null included);
//   - a mutation over GET is 405 with "Allow: POST"; subscriptions belong to the WebSocket
//     and SSE transports and are refused here;
//   - a POST body over Config.MaxBodyBytes is 413, a POST that is not application/json 415.
package httpgraphql

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventgate/eventgate/server/apperr"
)

// DefaultMaxBodyBytes is the POST body limit used when Config.MaxBodyBytes is zero. 1 MiB holds
// any hand-written query with room to spare while bounding what one request can make us buffer.
const DefaultMaxBodyBytes = 1 << 20

// CodeBadRequest is the extensions.code of errors about the HTTP request itself (malformed
// JSON, missing query, unsupported media type, wrong method): BAD_USER_INPUT, the contract's
// code for input the client must fix (DESIGN.md §3 lists no other for it).
const CodeBadRequest = "BAD_USER_INPUT"

// Config configures a Transport.
type Config struct {
	// MaxBodyBytes caps the size of a POST body; larger bodies get 413. Zero means
	// DefaultMaxBodyBytes; a negative value is treated as zero.
	MaxBodyBytes int64
	// Logger receives diagnostics (never bodies or headers). Nil discards them.
	Logger *slog.Logger
}

// Transport serves GraphQL queries and mutations over plain HTTP POST and GET. It is safe for
// concurrent use; create it with New.
type Transport struct {
	maxBody int64
	log     *slog.Logger
}

var _ graphql.Transport = (*Transport)(nil)

// New returns a Transport configured by cfg.
func New(cfg Config) *Transport {
	maxBody := cfg.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Transport{maxBody: maxBody, log: log.With("component", "httpgraphql")}
}

// Supports reports whether r is a request for this transport: a POST (of any content type, so
// that unsupported ones get a proper 415 from Do rather than gqlgen's generic "transport not
// supported") or a GET, excluding WebSocket upgrades and requests that ask for
// text/event-stream, which belong to the WebSocket and SSE transports.
func (t *Transport) Supports(r *http.Request) bool {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return false
	}
	if isWebSocketUpgrade(r) {
		return false
	}
	return !PrefersEventStream(r.Header.Values("Accept"))
}

// Do executes the GraphQL request in r with exec and writes the response to w.
func (t *Transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	// gqlgen's handler.Server starts the operation trace, but the executor panics without one,
	// so start it here as well: the transport then also works mounted without handler.Server,
	// and the start moves only by the moment handler.Server took to pick this transport.
	ctx := graphql.StartOperationTrace(r.Context())
	w.Header().Add("Vary", "Accept")

	media, ok := negotiate(r.Header.Values("Accept"))
	if !ok {
		t.writeHTTPError(ctx, w, exec, mediaJSON, http.StatusNotAcceptable, CodeBadRequest,
			"none of the media types in Accept is available; accept application/graphql-response+json or application/json")
		return
	}

	start := graphql.Now()
	var (
		params *graphql.RawParams
		perr   *paramError
	)
	switch r.Method {
	case http.MethodPost:
		params, perr = t.readPost(w, r)
	case http.MethodGet:
		params, perr = readGet(r)
	default:
		w.Header().Set("Allow", "GET, POST")
		t.writeHTTPError(ctx, w, exec, media, http.StatusMethodNotAllowed, CodeBadRequest,
			"method %s is not allowed; use POST, or GET for queries", r.Method)
		return
	}
	if perr != nil {
		t.writeHTTPError(ctx, w, exec, media, perr.status, perr.code, "%s", perr.msg)
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	opCtx, errs := exec.CreateOperationContext(ctx, params)
	if len(errs) > 0 {
		if opCtx != nil {
			ctx = graphql.WithOperationContext(ctx, opCtx)
		}
		t.writeRequestErrors(ctx, w, exec, media, errs)
		return
	}
	opCtxCtx := graphql.WithOperationContext(ctx, opCtx)

	switch kind := opCtx.Operation.Operation; {
	case kind == ast.Subscription:
		t.writeRequestErrors(opCtxCtx, w, exec, media, gqlerror.List{badRequest(
			"subscriptions are not served over plain HTTP; use a WebSocket (graphql-transport-ws) " +
				"or Server-Sent Events (Accept: text/event-stream) on this endpoint")})
		return
	case r.Method == http.MethodGet && kind != ast.Query:
		// GraphQL over HTTP: GET must never change state, whatever the caller accepts.
		w.Header().Set("Allow", "POST")
		t.writeHTTPError(opCtxCtx, w, exec, media, http.StatusMethodNotAllowed, CodeBadRequest,
			"%s operations are not allowed over GET; use POST", kind)
		return
	}
	if usesDefer(opCtx.Operation) {
		// Incremental delivery needs a streaming response; a single JSON body would silently
		// drop the deferred parts.
		t.writeRequestErrors(opCtxCtx, w, exec, media, gqlerror.List{badRequest(
			"@defer is not supported over this transport")})
		return
	}

	responses, execCtx := exec.DispatchOperation(ctx, opCtx)
	resp := responses(execCtx)
	if resp == nil {
		// The executor ends the stream without a result only when the request context is
		// done: the client has gone and nobody will read an answer.
		t.log.DebugContext(ctx, "request ended before a result", "error", context.Cause(execCtx))
		return
	}
	if resp.HasNext != nil && *resp.HasNext {
		// Not reachable while usesDefer rejects @defer; drain anyway so that deferred
		// resolvers blocked on their results channel can finish.
		for more := responses(execCtx); more != nil; more = responses(execCtx) {
		}
	}
	if resp.Data == nil && len(resp.Errors) > 0 {
		// An operation middleware (auth, rate limit) refused the operation before it ran.
		// Its errors have been presented by the executor already.
		t.writeRejected(opCtxCtx, w, media, &response{Errors: resp.Errors, Extensions: resp.Extensions})
		return
	}
	data := resp.Data
	if len(data) == 0 {
		// It ran, so "data" must be present even though the executor produced nothing.
		data = json.RawMessage("null")
	}
	t.write(ctx, w, http.StatusOK, media, &response{Errors: resp.Errors, Data: data, Extensions: resp.Extensions})
}

// writeRequestErrors answers a request that was not executed because of errs, presenting
// them through exec so that the error presenter and response extensions run.
func (t *Transport) writeRequestErrors(
	ctx context.Context,
	w http.ResponseWriter,
	exec graphql.GraphExecutor,
	media string,
	errs gqlerror.List,
) {
	presented := exec.DispatchError(ctx, errs)
	t.writeRejected(ctx, w, media, &response{Errors: presented.Errors, Extensions: presented.Extensions})
}

// writeRejected writes body, which has errors and no data, with the status for a request
// that was not executed.
func (t *Transport) writeRejected(ctx context.Context, w http.ResponseWriter, media string, body *response) {
	status := requestErrorStatus(media, body.Errors)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	t.write(ctx, w, status, media, body)
}

// writeHTTPError answers with a fixed status and one error carrying code.
func (t *Transport) writeHTTPError(
	ctx context.Context,
	w http.ResponseWriter,
	exec graphql.GraphExecutor,
	media string,
	status int,
	code, format string,
	args ...any,
) {
	err := gqlerror.Errorf(format, args...)
	err.Extensions = map[string]any{"code": code}
	presented := exec.DispatchError(ctx, gqlerror.List{err})
	t.write(ctx, w, status, media, &response{Errors: presented.Errors, Extensions: presented.Extensions})
}

// requestErrorStatus is the status of a response to a request that was not executed.
func requestErrorStatus(media string, errs gqlerror.List) int {
	codes := make(map[string]bool, len(errs))
	for _, e := range errs {
		if c, ok := e.Extensions["code"].(string); ok {
			codes[c] = true
		}
	}
	// DESIGN.md §3: a missing or invalid token is 401 whatever the client accepts.
	if codes[apperr.Unauthenticated] {
		return http.StatusUnauthorized
	}
	if media == mediaJSON {
		return http.StatusOK
	}
	switch {
	case codes[apperr.Internal]:
		return http.StatusInternalServerError
	case codes[apperr.Forbidden]:
		return http.StatusForbidden
	case codes[apperr.RateLimited]:
		return http.StatusTooManyRequests
	default:
		return http.StatusBadRequest
	}
}

// badRequest is a request error about the HTTP request rather than the GraphQL document.
func badRequest(format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	err.Extensions = map[string]any{"code": CodeBadRequest}
	return err
}

// usesDefer reports whether op (or a fragment it spreads) carries @defer.
func usesDefer(op *ast.OperationDefinition) bool {
	seen := map[string]bool{}
	var walk func(ast.SelectionSet) bool
	walk = func(set ast.SelectionSet) bool {
		for _, sel := range set {
			switch s := sel.(type) {
			case *ast.Field:
				if walk(s.SelectionSet) {
					return true
				}
			case *ast.InlineFragment:
				if s.Directives.ForName("defer") != nil || walk(s.SelectionSet) {
					return true
				}
			case *ast.FragmentSpread:
				if s.Directives.ForName("defer") != nil {
					return true
				}
				if s.Definition != nil && !seen[s.Name] {
					seen[s.Name] = true
					if walk(s.Definition.SelectionSet) {
						return true
					}
				}
			}
		}
		return false
	}
	return walk(op.SelectionSet)
}

// isWebSocketUpgrade reports whether r asks to switch to the WebSocket protocol.
func isWebSocketUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "websocket") {
				return true
			}
		}
	}
	return false
}
