package httpgraphql

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
)

// paramError is a request that could not be turned into GraphQL parameters: it is not a
// well-formed GraphQL-over-HTTP request, so its status does not depend on the media type.
type paramError struct {
	status int
	code   string
	msg    string
}

// requestError is a malformed request: 400 under either media type, as GraphQL over HTTP says
// for bodies that are not JSON and parameters of the wrong shape (graphql-http audit BCF8 and
// its "MAY use 400" companions). GraphQL errors proper (parse, validation, variable coercion)
// are not paramErrors; under application/json they stay 200.
func requestError(msg string) *paramError {
	return &paramError{status: http.StatusBadRequest, code: CodeBadRequest, msg: msg}
}

// readPost reads and decodes a POST body.
func (t *Transport) readPost(w http.ResponseWriter, r *http.Request) (*graphql.RawParams, *paramError) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil, &paramError{status: http.StatusUnsupportedMediaType, code: CodeBadRequest,
			msg: "missing Content-Type; send the request body as application/json"}
	}
	mt, mtParams, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, &paramError{status: http.StatusUnsupportedMediaType, code: CodeBadRequest,
			msg: "malformed Content-Type; send the request body as application/json"}
	}
	if mt != mediaJSON {
		return nil, &paramError{status: http.StatusUnsupportedMediaType, code: CodeBadRequest,
			msg: "unsupported Content-Type " + mt + "; send the request body as application/json"}
	}
	if cs, ok := mtParams["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return nil, &paramError{status: http.StatusUnsupportedMediaType, code: CodeBadRequest,
			msg: "unsupported charset; send the request body as UTF-8"}
	}
	tooLarge := &paramError{status: http.StatusRequestEntityTooLarge, code: CodeBadRequest,
		msg: "the request body is larger than the limit of this server"}
	if r.ContentLength > t.maxBody {
		return nil, tooLarge
	}
	if r.Body == nil {
		return parseBody(nil)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, t.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge
		}
		t.log.DebugContext(r.Context(), "read request body", "error", err)
		return nil, &paramError{status: http.StatusBadRequest, code: CodeBadRequest,
			msg: "the request body could not be read"}
	}
	return parseBody(body)
}

// parseBody decodes a GraphQL-over-HTTP JSON request body. Messages never quote the body:
// it may hold secrets (createWebhook's secret, publishEvent payloads).
func parseBody(body []byte) (*graphql.RawParams, *paramError) {
	body = trimJSONSpace(body)
	if len(body) == 0 {
		return nil, requestError(`the request body is empty; send a JSON object with a "query"`)
	}
	if !utf8.Valid(body) {
		return nil, requestError("the request body is not valid UTF-8")
	}
	if body[0] != '{' {
		return nil, requestError(`the request body must be a JSON object with a "query"`)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, requestError("the request body is not valid JSON: " + jsonErrorMessage(err))
	}

	p := &graphql.RawParams{}
	hasQuery := false
	if raw, ok := fields["query"]; ok && !isJSONNull(raw) {
		if err := json.Unmarshal(raw, &p.Query); err != nil {
			return nil, requestError(`"query" must be a string`)
		}
		hasQuery = true
	}
	if raw, ok := fields["operationName"]; ok && !isJSONNull(raw) {
		if err := json.Unmarshal(raw, &p.OperationName); err != nil {
			return nil, requestError(`"operationName" must be a string or null`)
		}
	}
	var ok bool
	if p.Variables, ok = decodeObject(fields["variables"]); !ok {
		return nil, requestError(`"variables" must be a JSON object or null`)
	}
	if p.Extensions, ok = decodeObject(fields["extensions"]); !ok {
		return nil, requestError(`"extensions" must be a JSON object or null`)
	}
	if !hasQuery && !hasPersistedQuery(p.Extensions) {
		return nil, requestError(`missing "query": send the GraphQL document as a string`)
	}
	return p, nil
}

// readGet decodes the parameters of a GET request from its URL query.
func readGet(r *http.Request) (*graphql.RawParams, *paramError) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, requestError("the URL query is malformed")
	}
	p := &graphql.RawParams{
		Query:         values.Get("query"),
		OperationName: values.Get("operationName"),
	}
	var ok bool
	if s := values.Get("variables"); s != "" {
		if p.Variables, ok = decodeObject(json.RawMessage(s)); !ok {
			return nil, requestError(`"variables" must be a JSON object or null`)
		}
	}
	if s := values.Get("extensions"); s != "" {
		if p.Extensions, ok = decodeObject(json.RawMessage(s)); !ok {
			return nil, requestError(`"extensions" must be a JSON object or null`)
		}
	}
	if !values.Has("query") && !hasPersistedQuery(p.Extensions) {
		return nil, requestError(`missing "query" URL parameter`)
	}
	return p, nil
}

// decodeObject decodes raw as a JSON object. An absent or null value is a nil map; anything
// other than an object is not ok. Numbers stay json.Number so that Int64 variables (Telegram
// ids) are not rounded through float64.
func decodeObject(raw json.RawMessage) (map[string]any, bool) {
	raw = trimJSONSpace(raw)
	if len(raw) == 0 || isJSONNull(raw) {
		return nil, true
	}
	if raw[0] != '{' {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false // trailing data after the object
	}
	return m, true
}

// hasPersistedQuery reports whether the request names an automatic persisted query, which
// legitimately comes without a query when an executor extension knows its hash.
func hasPersistedQuery(ext map[string]any) bool {
	_, ok := ext["persistedQuery"]
	return ok
}

func isJSONNull(raw json.RawMessage) bool { return string(trimJSONSpace(raw)) == "null" }

func trimJSONSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }

// jsonErrorMessage describes a decoding error without echoing input beyond a character.
func jsonErrorMessage(err error) string {
	if syn, ok := errors.AsType[*json.SyntaxError](err); ok {
		return syn.Error()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return "malformed JSON"
}
