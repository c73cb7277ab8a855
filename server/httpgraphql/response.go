package httpgraphql

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// response is the body of every answer. Unlike graphql.Response, "data" is omitted when empty
// so that requests that were not executed carry no "data" key at all, as GraphQL over HTTP
// requires; executed operations always set Data (to "null" if need be).
type response struct {
	Errors     gqlerror.List   `json:"errors,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	Extensions map[string]any  `json:"extensions,omitempty"`
}

// internalErrorBody is written when a response cannot be encoded, which only a response
// extension putting something unencodable into extensions can cause.
const internalErrorBody = `{"errors":[{"message":"internal server error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}`

// write sends body with status as media; the charset is always stated, as the specification asks.
func (t *Transport) write(ctx context.Context, w http.ResponseWriter, status int, media string, body *response) {
	b, err := json.Marshal(body)
	if err != nil {
		t.log.ErrorContext(ctx, "encode graphql response", "error", err)
		status, b = http.StatusInternalServerError, []byte(internalErrorBody)
	}
	h := w.Header()
	h.Set("Content-Type", media+"; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	// Answers depend on the bearer token; no shared or browser cache should keep them.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if _, err := w.Write(b); err != nil {
		t.log.DebugContext(ctx, "write graphql response", "error", err)
	}
}
