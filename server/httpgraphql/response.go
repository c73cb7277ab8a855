package httpgraphql

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

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
	b, err := body.encode()
	if err != nil {
		t.log.ErrorContext(ctx, "encode graphql response", "error", err)
		status, b = http.StatusInternalServerError, []byte(internalErrorBody)
	}
	h := w.Header()
	h.Set("Content-Type", media+"; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	// Answers depend on the bearer token; no shared or browser cache should keep them.
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if _, err := w.Write(b); err != nil {
		t.log.DebugContext(ctx, "write graphql response", "error", err)
	}
}

// encode is json.Marshal(r) except that Data is copied as it is. Data is the executor's
// output, compact JSON already (gqlgen writes no whitespace and the JSON scalar writes its
// values compacted), and re-validating and compacting it through encoding/json took a tenth
// of the CPU of a list query.
func (r *response) encode() ([]byte, error) {
	var errs, ext []byte
	if len(r.Errors) > 0 {
		var err error
		if errs, err = json.Marshal(r.Errors); err != nil {
			return nil, err
		}
	}
	if len(r.Extensions) > 0 {
		var err error
		if ext, err = json.Marshal(r.Extensions); err != nil {
			return nil, err
		}
	}
	b := make([]byte, 0, len(errs)+len(r.Data)+len(ext)+len(`{"errors":,"data":,"extensions":}`))
	b = append(b, '{')
	b = appendMember(b, "errors", errs)
	b = appendMember(b, "data", r.Data)
	b = appendMember(b, "extensions", ext)
	return append(b, '}'), nil
}

// appendMember appends `"name":value` to the object being written in b, unless value is empty
// (omitempty).
func appendMember(b []byte, name string, value []byte) []byte {
	if len(value) == 0 {
		return b
	}
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":`...)
	return append(b, value...)
}
