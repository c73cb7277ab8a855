// Package graphiql serves the GraphiQL IDE for eventgate's GraphQL endpoint.
//
// The page talks to the endpoint over HTTP for queries and mutations and over WebSocket
// (graphql-transport-ws, same host) for subscriptions. A bearer token pasted into the field
// above the editor is kept in the browser's localStorage and sent as the Authorization header
// on HTTP and in the connection_init payload on WebSocket (DESIGN.md §4); it is never put in a
// URL. The page is public (it holds no data); every request it makes is authenticated.
//
// For now GraphiQL, React and graphql-ws come from a CDN at pinned versions; the HTML lives in
// index.html so that it can later reference locally bundled assets instead.
package graphiql

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
)

// DefaultTitle and DefaultEndpoint are used for empty Config fields.
const (
	DefaultTitle    = "eventgate GraphiQL"
	DefaultEndpoint = "/query"
)

// storageKey is the localStorage key of the pasted token.
const storageKey = "eventgate.graphiql.token"

//go:embed index.html
var pageSource string

// Config configures the page.
type Config struct {
	// Title is the page title.
	Title string
	// Endpoint is the GraphQL endpoint: a path on the page's host (such as "/query"), or an
	// absolute http(s) URL. Subscriptions use the same URL with the ws(s) scheme.
	Endpoint string
}

// Handler returns a handler that serves the GraphiQL page for GET and HEAD requests. The page is
// rendered once, here, so serving it cannot fail. It panics if the embedded template is broken,
// which the package's tests rule out.
func Handler(cfg Config) http.Handler {
	if cfg.Title == "" {
		cfg.Title = DefaultTitle
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	page, err := render(cfg)
	if err != nil {
		panic(fmt.Errorf("graphiql: %w", err))
	}
	return &handler{page: page}
}

// render executes the page template. html/template escapes Title for HTML and writes
// Endpoint and the storage key as JavaScript string literals.
func render(cfg Config) ([]byte, error) {
	tmpl, err := template.New("graphiql").Parse(pageSource)
	if err != nil {
		return nil, fmt.Errorf("parse page template: %w", err)
	}
	var buf bytes.Buffer
	data := struct {
		Title, Endpoint, StorageKey string
	}{cfg.Title, cfg.Endpoint, storageKey}
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render page: %w", err)
	}
	return buf.Bytes(), nil
}

type handler struct {
	page []byte
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(h.page)))
	hdr.Set("X-Content-Type-Options", "nosniff")
	// The page reads a token from localStorage: no other site may frame it, and it leaks no
	// referrer to the CDN.
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Content-Security-Policy", "frame-ancestors 'none'")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(h.page) // a failed write means the client left; nothing to do
	}
}
