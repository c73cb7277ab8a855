package httpgraphql

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/graph/generated"
	"github.com/eventgate/eventgate/graph/model"
)

// testRoot serves a few fields of the real schema; everything else is the nil embedded
// interface and must never be reached by these tests.
type testRoot struct{ generated.ResolverRoot }

func (testRoot) Query() generated.QueryResolver       { return testQuery{} }
func (testRoot) Mutation() generated.MutationResolver { return testMutation{} }

type testQuery struct{ generated.QueryResolver }

func (testQuery) EventTypes(context.Context) ([]*model.EventTypeInfo, error) {
	return []*model.EventTypeInfo{{Name: "user.created", Description: "A user registered.", Schema: json.RawMessage(`{}`)}}, nil
}

// Webhook fails: the field is nullable, so data keeps {"webhook": null}.
func (testQuery) Webhook(context.Context, string) (*ent.Webhook, error) {
	return nil, errors.New("webhook lookup failed")
}

// Viewer fails: the field is non-null, so data becomes null.
func (testQuery) Viewer(context.Context) (*ent.ApiToken, error) {
	return nil, errors.New("viewer lookup failed")
}

type testMutation struct{ generated.MutationResolver }

func (testMutation) DeleteWebhook(context.Context, string) (bool, error) { return true, nil }

// newExecutor returns the real generated executor over testRoot, with introspection on as
// in production (the audit queries __type).
func newExecutor(t *testing.T) *executor.Executor {
	t.Helper()
	es := generated.NewExecutableSchema(generated.Config{Resolvers: &testRoot{}})
	exec := executor.New(es)
	exec.Use(introspection{})
	return exec
}

// introspection turns introspection on, as gqlgen's extension.Introspection does in production
// (importing gqlgen's handler packages would pull modules go.mod does not list yet).
type introspection struct{}

func (introspection) ExtensionName() string                   { return "TestIntrospection" }
func (introspection) Validate(graphql.ExecutableSchema) error { return nil }
func (introspection) MutateOperationContext(_ context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	opCtx.DisableIntrospection = false
	return nil
}

// refuser is an operation middleware that refuses operations whose X-Refuse header names an
// error code, the way an auth or rate-limit middleware would.
type refuser struct{}

func (refuser) ExtensionName() string                   { return "TestRefuser" }
func (refuser) Validate(graphql.ExecutableSchema) error { return nil }
func (refuser) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	code := graphql.GetOperationContext(ctx).Headers.Get("X-Refuse")
	if code == "" {
		return next(ctx)
	}
	return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
		Message: "refused", Extensions: map[string]any{"code": code},
	}}})
}

// newServer serves exec through a Transport the way gqlgen's handler.Server does: Supports
// first, then Do.
func newServer(t *testing.T, cfg Config, exec graphql.GraphExecutor) *httptest.Server {
	t.Helper()
	tr := New(cfg)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tr.Supports(r) {
			http.Error(w, "not for this transport", http.StatusTeapot)
			return
		}
		tr.Do(w, r, exec)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// reply is a decoded answer.
type reply struct {
	status int
	header http.Header
	raw    []byte
	keys   map[string]json.RawMessage
	errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	}
}

func (r *reply) hasData() bool { _, ok := r.keys["data"]; return ok }

func (r *reply) codes() []string {
	var out []string
	for _, e := range r.errors {
		c, _ := e.Extensions["code"].(string)
		out = append(out, c)
	}
	return out
}

type call struct {
	method      string
	accept      string // "" sends no Accept header
	contentType string // "" sends no Content-Type header
	body        string
	query       url.Values // GET parameters
	header      http.Header
}

func do(t *testing.T, srv *httptest.Server, c call) *reply {
	t.Helper()
	u := srv.URL + "/query"
	if c.query != nil {
		u += "?" + c.query.Encode()
	}
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	if c.accept != "" {
		req.Header.Set("Accept", c.accept)
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	rep := &reply{status: res.StatusCode, header: res.Header, raw: raw}
	if err := json.Unmarshal(raw, &rep.keys); err != nil {
		t.Fatalf("body is not a JSON object: %v; body %s", err, raw)
	}
	if e, ok := rep.keys["errors"]; ok {
		if err := json.Unmarshal(e, &rep.errors); err != nil {
			t.Fatalf("errors: %v; body %s", err, raw)
		}
		if len(rep.errors) == 0 {
			t.Errorf("got an empty errors list, want it omitted; body %s", raw)
		}
	}
	return rep
}

func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

const (
	acceptJSON = "application/json"
	acceptGQL  = "application/graphql-response+json"
)

// dataWant says what the "data" key must look like.
type dataWant int

// anyErrors as a wanted code means "some errors, whatever their code".
const anyErrors = "*"

const (
	dataAbsent dataWant = iota
	dataObject
	dataNull
)

// TestStatusByAccept is the core of DESIGN.md §3 "HTTP": for each kind of outcome, the status,
// the media type, whether "data" is present and the error code, under both response types.
func TestStatusByAccept(t *testing.T) {
	srv := newServer(t, Config{}, newExecutor(t))

	type want struct {
		status int
		data   dataWant
		code   string // first error's extensions.code; "" = no errors; anyErrors = errors, any code
	}
	tests := []struct {
		name     string
		call     call
		jsonWant want // under Accept: application/json
		gqlWant  want // under Accept: application/graphql-response+json
	}{
		{
			name:     "success",
			call:     call{contentType: "application/json", body: `{"query":"{ eventTypes { name } }"}`},
			jsonWant: want{200, dataObject, ""},
			gqlWant:  want{200, dataObject, ""},
		},
		{
			name:     "document parse error",
			call:     call{contentType: "application/json", body: `{"query":"{"}`},
			jsonWant: want{200, dataAbsent, "GRAPHQL_PARSE_FAILED"},
			gqlWant:  want{400, dataAbsent, "GRAPHQL_PARSE_FAILED"},
		},
		{
			name:     "validation error",
			call:     call{contentType: "application/json", body: `{"query":"{ noSuchField }"}`},
			jsonWant: want{200, dataAbsent, "GRAPHQL_VALIDATION_FAILED"},
			gqlWant:  want{400, dataAbsent, "GRAPHQL_VALIDATION_FAILED"},
		},
		{
			name:     "unknown operationName",
			call:     call{contentType: "application/json", body: `{"query":"query A { eventTypes { name } }","operationName":"B"}`},
			jsonWant: want{200, dataAbsent, "GRAPHQL_VALIDATION_FAILED"},
			gqlWant:  want{400, dataAbsent, "GRAPHQL_VALIDATION_FAILED"},
		},
		{
			name: "missing required variable",
			call: call{contentType: "application/json",
				body: `{"query":"query($id: ID!) { webhook(id: $id) { id } }"}`},
			jsonWant: want{200, dataAbsent, "GRAPHQL_VALIDATION_FAILED"},
			gqlWant:  want{400, dataAbsent, "GRAPHQL_VALIDATION_FAILED"},
		},
		{
			name: "variable of the wrong type",
			call: call{contentType: "application/json",
				body: `{"query":"query($id: ID!) { webhook(id: $id) { id } }","variables":{"id":{"not":"an id"}}}`},
			jsonWant: want{200, dataAbsent, "GRAPHQL_VALIDATION_FAILED"},
			gqlWant:  want{400, dataAbsent, "GRAPHQL_VALIDATION_FAILED"},
		},
		{
			name: "null for a non-null variable",
			call: call{contentType: "application/json",
				body: `{"query":"query CoerceFailure($id: ID!) { __typename }","variables":{"id":null}}`},
			jsonWant: want{200, dataAbsent, "GRAPHQL_VALIDATION_FAILED"},
			gqlWant:  want{400, dataAbsent, "GRAPHQL_VALIDATION_FAILED"},
		},
		{
			name:     "field error on a nullable field",
			call:     call{contentType: "application/json", body: `{"query":"{ webhook(id: \"1\") { id } }"}`},
			jsonWant: want{200, dataObject, anyErrors},
			gqlWant:  want{200, dataObject, anyErrors},
		},
		{
			name:     "field error on a non-null root field",
			call:     call{contentType: "application/json", body: `{"query":"{ viewer { id } }"}`},
			jsonWant: want{200, dataNull, anyErrors},
			gqlWant:  want{200, dataNull, anyErrors},
		},
		{
			name:     "missing query",
			call:     call{contentType: "application/json", body: `{"qeury":"{ __typename }"}`},
			jsonWant: want{400, dataAbsent, CodeBadRequest},
			gqlWant:  want{400, dataAbsent, CodeBadRequest},
		},
		{
			name:     "body is not JSON",
			call:     call{contentType: "application/json", body: `{ "not a JSON`},
			jsonWant: want{400, dataAbsent, CodeBadRequest},
			gqlWant:  want{400, dataAbsent, CodeBadRequest},
		},
		{
			name:     "body is a JSON array",
			call:     call{contentType: "application/json", body: `[{"query":"{ __typename }"}]`},
			jsonWant: want{400, dataAbsent, CodeBadRequest},
			gqlWant:  want{400, dataAbsent, CodeBadRequest},
		},
		{
			name:     "body is JSON null",
			call:     call{contentType: "application/json", body: `null`},
			jsonWant: want{400, dataAbsent, CodeBadRequest},
			gqlWant:  want{400, dataAbsent, CodeBadRequest},
		},
		{
			name:     "trailing data after the object",
			call:     call{contentType: "application/json", body: `{"query":"{ __typename }"} {}`},
			jsonWant: want{400, dataAbsent, CodeBadRequest},
			gqlWant:  want{400, dataAbsent, CodeBadRequest},
		},
		{
			name:     "empty body",
			call:     call{contentType: "application/json"},
			jsonWant: want{400, dataAbsent, CodeBadRequest},
			gqlWant:  want{400, dataAbsent, CodeBadRequest},
		},
		{
			name:     "subscription over POST",
			call:     call{contentType: "application/json", body: `{"query":"subscription { events { id } }"}`},
			jsonWant: want{200, dataAbsent, CodeBadRequest},
			gqlWant:  want{400, dataAbsent, CodeBadRequest},
		},
		{
			name: "@defer",
			call: call{contentType: "application/json",
				body: `{"query":"{ ... @defer { eventTypes { name } } }"}`},
			jsonWant: want{200, dataAbsent, CodeBadRequest},
			gqlWant:  want{400, dataAbsent, CodeBadRequest},
		},
		{
			name: "@defer in a named fragment",
			call: call{contentType: "application/json",
				body: `{"query":"{ ...F } fragment F on Query { ... @defer { eventTypes { name } } }"}`},
			jsonWant: want{200, dataAbsent, CodeBadRequest},
			gqlWant:  want{400, dataAbsent, CodeBadRequest},
		},
		{
			name:     "mutation over POST",
			call:     call{contentType: "application/json", body: `{"query":"mutation { deleteWebhook(id: \"1\") }"}`},
			jsonWant: want{200, dataObject, ""},
			gqlWant:  want{200, dataObject, ""},
		},
		{
			name:     "GET query",
			call:     call{method: http.MethodGet, query: url.Values{"query": {"{ eventTypes { name } }"}}},
			jsonWant: want{200, dataObject, ""},
			gqlWant:  want{200, dataObject, ""},
		},
		{
			name:     "GET mutation",
			call:     call{method: http.MethodGet, query: url.Values{"query": {`mutation { deleteWebhook(id: "1") }`}}},
			jsonWant: want{405, dataAbsent, CodeBadRequest},
			gqlWant:  want{405, dataAbsent, CodeBadRequest},
		},
		{
			name: "GET mutation chosen by operationName",
			call: call{method: http.MethodGet, query: url.Values{
				"query":         {`query Q { __typename } mutation M { deleteWebhook(id: "1") }`},
				"operationName": {"M"},
			}},
			jsonWant: want{405, dataAbsent, CodeBadRequest},
			gqlWant:  want{405, dataAbsent, CodeBadRequest},
		},
		{
			name:     "GET without query",
			call:     call{method: http.MethodGet, query: url.Values{"operationName": {"Q"}}},
			jsonWant: want{400, dataAbsent, CodeBadRequest},
			gqlWant:  want{400, dataAbsent, CodeBadRequest},
		},
		{
			name: "GET with variables that are not JSON",
			call: call{method: http.MethodGet, query: url.Values{
				"query": {"query($id: ID!) { webhook(id: $id) { id } }"}, "variables": {"{id:"},
			}},
			jsonWant: want{400, dataAbsent, CodeBadRequest},
			gqlWant:  want{400, dataAbsent, CodeBadRequest},
		},
		{
			name: "GET with variables",
			call: call{method: http.MethodGet, query: url.Values{
				"query":     {"query Type($name: String!) { __type(name: $name) { name } }"},
				"variables": {`{"name":"sometype"}`},
			}},
			jsonWant: want{200, dataObject, ""},
			gqlWant:  want{200, dataObject, ""},
		},
		{
			name: "GET with extensions that are not an object",
			call: call{method: http.MethodGet, query: url.Values{
				"query": {"{ __typename }"}, "extensions": {`[1]`},
			}},
			jsonWant: want{400, dataAbsent, CodeBadRequest},
			gqlWant:  want{400, dataAbsent, CodeBadRequest},
		},
	}
	for _, tt := range tests {
		for _, mode := range []struct {
			accept string
			want   want
		}{{acceptJSON, tt.jsonWant}, {acceptGQL, tt.gqlWant}} {
			t.Run(tt.name+"/"+mode.accept, func(t *testing.T) {
				c := tt.call
				c.accept = mode.accept
				rep := do(t, srv, c)
				w := mode.want
				if rep.status != w.status {
					t.Errorf("got status %d, want %d; body %s", rep.status, w.status, rep.raw)
				}
				wantCT := mode.accept + "; charset=utf-8"
				if got := rep.header.Get("Content-Type"); got != wantCT {
					t.Errorf("got Content-Type %q, want %q", got, wantCT)
				}
				switch w.data {
				case dataAbsent:
					if rep.hasData() {
						t.Errorf("got a data key, want none; body %s", rep.raw)
					}
				case dataNull:
					if string(rep.keys["data"]) != "null" {
						t.Errorf("got data %s, want null; body %s", rep.keys["data"], rep.raw)
					}
				case dataObject:
					if d := rep.keys["data"]; len(d) == 0 || d[0] != '{' {
						t.Errorf("got data %q, want an object; body %s", d, rep.raw)
					}
				}
				switch codes := rep.codes(); {
				case w.code == "" && len(codes) != 0:
					t.Errorf("got errors %v, want none; body %s", codes, rep.raw)
				case w.code == anyErrors && len(codes) == 0:
					t.Errorf("got no errors, want some; body %s", rep.raw)
				case w.code != "" && w.code != anyErrors && (len(codes) == 0 || codes[0] != w.code):
					t.Errorf("got error codes %v, want first %s; body %s", codes, w.code, rep.raw)
				}
				if w.status == http.StatusMethodNotAllowed {
					if got := rep.header.Get("Allow"); got != "POST" {
						t.Errorf("got Allow %q, want POST", got)
					}
				}
				if _, ok := rep.keys["extensions"]; ok {
					t.Errorf("got an extensions key, want it omitted when empty; body %s", rep.raw)
				}
			})
		}
	}
}

// TestFieldErrors checks that executed operations report their field errors next to data.
func TestFieldErrors(t *testing.T) {
	srv := newServer(t, Config{}, newExecutor(t))
	tests := []struct {
		name     string
		query    string
		wantData string
		wantPath string
	}{
		{"nullable field", `{ webhook(id: "1") { id } }`, `{"webhook":null}`, `["webhook"]`},
		{"non-null root field", `{ viewer { id } }`, `null`, `["viewer"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := do(t, srv, call{accept: acceptGQL, contentType: "application/json",
				body: jsonBody(t, map[string]any{"query": tt.query})})
			if got := string(rep.keys["data"]); got != tt.wantData {
				t.Errorf("got data %s, want %s", got, tt.wantData)
			}
			var errs []struct {
				Path json.RawMessage `json:"path"`
			}
			if err := json.Unmarshal(rep.keys["errors"], &errs); err != nil || len(errs) != 1 {
				t.Fatalf("got errors %s, want exactly one", rep.keys["errors"])
			}
			if got := string(errs[0].Path); got != tt.wantPath {
				t.Errorf("got error path %s, want %s", got, tt.wantPath)
			}
		})
	}
}

// TestParameterTypes mirrors the graphql-http audits on each request parameter: the right
// type is accepted, null is accepted where allowed, anything else is a request error.
func TestParameterTypes(t *testing.T) {
	srv := newServer(t, Config{}, newExecutor(t))
	invalid := map[string][]any{
		"query":         {map[string]any{"obj": "ect"}, 0, false, []any{"array"}},
		"operationName": {map[string]any{"obj": "ect"}, 0, false, []any{"array"}},
		"variables":     {"string", 0, false, []any{"array"}},
		"extensions":    {"string", 0, false, []any{"array"}},
	}
	for param, values := range invalid {
		for _, v := range values {
			body := map[string]any{"query": "{ __typename }", param: v}
			for _, accept := range []string{acceptJSON, acceptGQL} {
				t.Run(param+"="+jsonBody(t, v)+"/"+accept, func(t *testing.T) {
					rep := do(t, srv, call{accept: accept, contentType: "application/json", body: jsonBody(t, body)})
					const wantStatus = 400 // not a well-formed request, whatever the media type
					if rep.status != wantStatus {
						t.Errorf("got status %d, want %d; body %s", rep.status, wantStatus, rep.raw)
					}
					if len(rep.errors) == 0 || rep.hasData() {
						t.Errorf("got body %s, want errors and no data", rep.raw)
					}
				})
			}
		}
	}
	valid := []map[string]any{
		{"query": "{ __typename }", "variables": nil},
		{"query": "{ __typename }", "operationName": nil},
		{"query": "{ __typename }", "extensions": nil},
		{"query": "{ __typename }", "extensions": map[string]any{"some": "value"}},
		{"query": "query Query { __typename }", "operationName": "Query"},
		{"query": "query Type($name: String!) { __type(name: $name) { name } }", "variables": map[string]any{"name": "sometype"}},
	}
	for _, body := range valid {
		for _, accept := range []string{acceptJSON, acceptGQL} {
			t.Run(jsonBody(t, body)+"/"+accept, func(t *testing.T) {
				rep := do(t, srv, call{accept: accept, contentType: "application/json", body: jsonBody(t, body)})
				if rep.status != 200 || len(rep.errors) != 0 || !rep.hasData() {
					t.Errorf("got status %d body %s, want 200 with data and no errors", rep.status, rep.raw)
				}
			})
		}
	}
}

// TestMediaTypes covers Accept negotiation and request Content-Type handling end to end.
func TestMediaTypes(t *testing.T) {
	srv := newServer(t, Config{}, newExecutor(t))
	const ok = `{"query":"{ __typename }"}`
	tests := []struct {
		name        string
		accept      string
		contentType string
		body        string
		wantStatus  int
		wantMedia   string
	}{
		{"no Accept", "", "application/json", ok, 200, acceptJSON},
		{"*/*", "*/*", "application/json", ok, 200, acceptJSON},
		{"application/*", "application/*", "application/json", ok, 200, acceptJSON},
		{"both, graphql-response first", acceptGQL + ", " + acceptJSON, "application/json", ok, 200, acceptGQL},
		{"both, json first", acceptJSON + ", " + acceptGQL, "application/json", ok, 200, acceptJSON},
		{"q-values prefer json", acceptGQL + ";q=0.5, " + acceptJSON, "application/json", ok, 200, acceptJSON},
		{"browser default", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/json", ok, 200, acceptJSON},
		{"json with charset", acceptJSON + "; charset=utf-8", "application/json", ok, 200, acceptJSON},
		{"html only", "text/html", "application/json", ok, 406, acceptJSON},
		{"json refused explicitly", acceptJSON + ";q=0, text/html", "application/json", ok, 406, acceptJSON},
		{"utf-8 request charset", "", "application/json; charset=utf-8", ok, 200, acceptJSON},
		{"UTF-8 request charset upper case", "", "application/json; charset=UTF-8", ok, 200, acceptJSON},
		{"no Content-Type", acceptGQL, "", ok, 415, acceptGQL},
		{"no Content-Type, no body", "", "", "", 415, acceptJSON},
		{"text/plain", "", "text/plain", ok, 415, acceptJSON},
		{"form", "", "application/x-www-form-urlencoded", "query=%7B__typename%7D", 415, acceptJSON},
		{"latin-1 request charset", "", "application/json; charset=iso-8859-1", ok, 415, acceptJSON},
		{"malformed Content-Type", "", "application/json; =", ok, 415, acceptJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := do(t, srv, call{accept: tt.accept, contentType: tt.contentType, body: tt.body})
			if rep.status != tt.wantStatus {
				t.Errorf("got status %d, want %d; body %s", rep.status, tt.wantStatus, rep.raw)
			}
			wantCT := tt.wantMedia + "; charset=utf-8"
			if got := rep.header.Get("Content-Type"); got != wantCT {
				t.Errorf("got Content-Type %q, want %q", got, wantCT)
			}
			if tt.wantStatus == 200 && len(rep.errors) != 0 {
				t.Errorf("got errors %s, want none", rep.keys["errors"])
			}
			// Caches must key GET answers on Accept, and keep no token-dependent answer.
			if got := rep.header.Get("Vary"); got != "Accept" {
				t.Errorf("got Vary %q, want Accept", got)
			}
			if got := rep.header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("got Cache-Control %q, want no-store", got)
			}
			if tt.wantStatus != 200 && (len(rep.errors) == 0 || rep.hasData()) {
				t.Errorf("got body %s, want errors and no data", rep.raw)
			}
		})
	}
}

// TestBodyLimit checks 413 both when the length is declared and when the body is streamed.
func TestBodyLimit(t *testing.T) {
	const limit = 256
	srv := newServer(t, Config{MaxBodyBytes: limit}, newExecutor(t))
	big := jsonBody(t, map[string]any{"query": "{ __typename }", "extensions": map[string]any{"pad": strings.Repeat("x", 2*limit)}})
	small := `{"query":"{ __typename }"}`

	post := func(t *testing.T, body io.Reader) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, body)
		if err != nil {
			t.Fatalf("new request: %v", err)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("post: %v", err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	tests := []struct {
		name string
		body io.Reader
		want int
	}{
		{"declared length over the limit", strings.NewReader(big), http.StatusRequestEntityTooLarge},
		// Hiding the reader's type makes the client stream it chunked, without a length.
		{"streamed over the limit", struct{ io.Reader }{strings.NewReader(big)}, http.StatusRequestEntityTooLarge},
		{"under the limit", strings.NewReader(small), http.StatusOK},
		{"streamed under the limit", struct{ io.Reader }{strings.NewReader(small)}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := post(t, tt.body)
			if res.StatusCode != tt.want {
				b, _ := io.ReadAll(res.Body)
				t.Fatalf("got status %d, want %d; body %s", res.StatusCode, tt.want, b)
			}
			if tt.want == http.StatusRequestEntityTooLarge {
				var body struct {
					Errors []struct {
						Extensions map[string]any `json:"extensions"`
					} `json:"errors"`
				}
				if err := json.NewDecoder(res.Body).Decode(&body); err != nil || len(body.Errors) != 1 {
					t.Fatalf("got undecodable or unexpected body (%v), want one error", err)
				}
				if got := body.Errors[0].Extensions["code"]; got != CodeBadRequest {
					t.Errorf("got code %v, want %s", got, CodeBadRequest)
				}
			}
		})
	}
}

// TestRefusedByMiddleware checks operations refused by an operation middleware (as auth does):
// no data, 401 for UNAUTHENTICATED whatever the media type, 4xx/5xx under
// graphql-response+json for the others.
func TestRefusedByMiddleware(t *testing.T) {
	exec := newExecutor(t)
	exec.Use(refuser{})
	srv := newServer(t, Config{}, exec)
	tests := []struct {
		code   string
		accept string
		want   int
	}{
		{"UNAUTHENTICATED", acceptJSON, 401},
		{"UNAUTHENTICATED", acceptGQL, 401},
		{"RATE_LIMITED", acceptJSON, 200},
		{"RATE_LIMITED", acceptGQL, 429},
		{"FORBIDDEN", acceptGQL, 403},
		{"INTERNAL_SERVER_ERROR", acceptGQL, 500},
		{"SOMETHING_ELSE", acceptGQL, 400},
	}
	for _, tt := range tests {
		t.Run(tt.code+"/"+tt.accept, func(t *testing.T) {
			rep := do(t, srv, call{accept: tt.accept, contentType: "application/json",
				body: `{"query":"{ eventTypes { name } }"}`, header: http.Header{"X-Refuse": {tt.code}}})
			if rep.status != tt.want {
				t.Errorf("got status %d, want %d; body %s", rep.status, tt.want, rep.raw)
			}
			if rep.hasData() {
				t.Errorf("got a data key, want none; body %s", rep.raw)
			}
			if codes := rep.codes(); len(codes) != 1 || codes[0] != tt.code {
				t.Errorf("got codes %v, want [%s]", codes, tt.code)
			}
			wantAuth := ""
			if tt.want == 401 {
				wantAuth = "Bearer"
			}
			if got := rep.header.Get("WWW-Authenticate"); got != wantAuth {
				t.Errorf("got WWW-Authenticate %q, want %q", got, wantAuth)
			}
		})
	}
}

// TestErrorPresenter checks that request errors go through the executor's error presenter,
// which is where eventgate hides internal details and maps domain codes.
func TestErrorPresenter(t *testing.T) {
	exec := newExecutor(t)
	exec.SetErrorPresenter(func(ctx context.Context, err error) *gqlerror.Error {
		e := graphql.DefaultErrorPresenter(ctx, err)
		e.Message = "presented: " + e.Message
		return e
	})
	srv := newServer(t, Config{}, exec)
	for _, body := range []string{`{"query":"{"}`, `{"nope":1}`} {
		t.Run(body, func(t *testing.T) {
			rep := do(t, srv, call{contentType: "application/json", body: body})
			if len(rep.errors) != 1 || !strings.HasPrefix(rep.errors[0].Message, "presented: ") {
				t.Errorf("got body %s, want one presented error", rep.raw)
			}
		})
	}
}

func TestSupports(t *testing.T) {
	tr := New(Config{})
	tests := []struct {
		name   string
		method string
		header http.Header
		want   bool
	}{
		{"POST", http.MethodPost, http.Header{"Content-Type": {"application/json"}}, true},
		{"POST of another type", http.MethodPost, http.Header{"Content-Type": {"text/plain"}}, true},
		{"POST without type", http.MethodPost, nil, true},
		{"GET", http.MethodGet, nil, true},
		{"GET with */*", http.MethodGet, http.Header{"Accept": {"*/*"}}, true},
		{"PUT", http.MethodPut, nil, false},
		{"OPTIONS", http.MethodOptions, nil, false},
		{"WebSocket upgrade", http.MethodGet, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, false},
		{"WebSocket upgrade, odd case", http.MethodGet, http.Header{"Connection": {"upgrade"}, "Upgrade": {"WebSocket"}}, false},
		{"SSE GET", http.MethodGet, http.Header{"Accept": {"text/event-stream"}}, false},
		{"SSE POST", http.MethodPost, http.Header{"Accept": {"text/event-stream"}, "Content-Type": {"application/json"}}, false},
		{"SSE preferred among others", http.MethodPost, http.Header{"Accept": {"text/event-stream, application/json"}}, false},
		{"SSE accepted, JSON preferred", http.MethodPost, http.Header{"Accept": {"application/json, text/event-stream"}}, true},
		{"urql", http.MethodGet, http.Header{"Accept": {"application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"}}, true},
		{"SSE refused", http.MethodPost, http.Header{"Accept": {"text/event-stream;q=0, application/json"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/query", nil)
			for k, v := range tt.header {
				r.Header[k] = v
			}
			if got := tr.Supports(r); got != tt.want {
				t.Errorf("got Supports %v, want %v", got, tt.want)
			}
		})
	}
}

// TestInt64Variables checks that large integers in variables reach the executor exactly.
func TestInt64Variables(t *testing.T) {
	for _, tt := range []struct {
		name string
		read func() (map[string]any, error)
	}{
		{"POST", func() (map[string]any, error) {
			p, perr := parseBody([]byte(`{"query":"{ __typename }","variables":{"id":9007199254740993}}`))
			if perr != nil {
				return nil, errors.New(perr.msg)
			}
			return p.Variables, nil
		}},
		{"GET", func() (map[string]any, error) {
			r := httptest.NewRequest(http.MethodGet, "/query?"+url.Values{
				"query": {"{ __typename }"}, "variables": {`{"id":9007199254740993}`},
			}.Encode(), nil)
			p, perr := readGet(r)
			if perr != nil {
				return nil, errors.New(perr.msg)
			}
			return p.Variables, nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vars, err := tt.read()
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			n, ok := vars["id"].(json.Number)
			if !ok || n.String() != "9007199254740993" {
				t.Errorf("got %#v, want json.Number 9007199254740993", vars["id"])
			}
		})
	}
}

func BenchmarkPost(b *testing.B) {
	es := generated.NewExecutableSchema(generated.Config{Resolvers: &testRoot{}})
	exec := executor.New(es)
	tr := New(Config{})
	const body = `{"query":"query Q($t: String!) { eventTypes { name description } __type(name: $t) { name } }","variables":{"t":"Event"}}`
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", acceptGQL)
		w := httptest.NewRecorder()
		tr.Do(w, r, exec)
		if w.Code != http.StatusOK {
			b.Fatalf("got status %d, want 200: %s", w.Code, w.Body)
		}
	}
}
