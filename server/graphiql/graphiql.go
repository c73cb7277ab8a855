// Package graphiql serves the GraphiQL IDE for eventgate's GraphQL endpoint, with everything it
// needs embedded in the binary: the page loads nothing from any other host, so it works offline
// and its Content-Security-Policy can allow scripts from this origin only.
//
// The page talks to the endpoint over HTTP for queries and mutations and over WebSocket
// (graphql-transport-ws, same host) for subscriptions. A bearer token pasted into the field
// above the editor is kept in the browser's localStorage and sent as the Authorization header
// over HTTP and in the connection_init payload over WebSocket; it never goes into a URL.
//
// The JavaScript and CSS in assets/ are built from ui/graphiql (GraphiQL and its dependencies
// from npm, bundled by esbuild) with `make ui`, and committed so that building eventgate needs
// no npm.
package graphiql

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for empty Config fields.
const (
	DefaultTitle      = "eventgate GraphiQL"
	DefaultEndpoint   = "/query"
	DefaultAssetsPath = "/graphiql/assets/"
)

// storageKey is the localStorage key of the pasted token.
const storageKey = "eventgate.graphiql.token"

// nonceMark stands for the per-response style nonce in the rendered page.
const nonceMark = "EGSTYLENONCE"

// The bundle's entry files, as named by ui/graphiql/build.mjs.
const (
	scriptAsset = "graphiql.js"
	styleAsset  = "graphiql.css"
)

//go:embed index.html
var pageSource string

//go:embed assets
var assetFS embed.FS

// Config configures the page.
type Config struct {
	// Title is the page title.
	Title string
	// Endpoint is the GraphQL endpoint: a path on the page's host (such as "/query"), or an
	// absolute http(s) URL. Subscriptions use the same URL with the ws(s) scheme.
	Endpoint string
	// AssetsPath is the URL path, ending in "/", under which the handler serves the bundled
	// JavaScript and CSS that the page references. The router must send GET and HEAD requests
	// for every path below it to the handler.
	AssetsPath string
}

// Handler returns a handler for GET and HEAD requests that serves the bundled assets for paths
// below cfg.AssetsPath and the GraphiQL page for any other path, so one handler can be mounted
// at the page's paths and at AssetsPath + "*". The page is rendered once, here, and only gets a
// fresh style nonce per response, so serving it cannot fail. It panics if the embedded template
// or assets are broken, which the package's tests rule out.
func Handler(cfg Config) http.Handler {
	if cfg.Title == "" {
		cfg.Title = DefaultTitle
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	if cfg.AssetsPath == "" {
		cfg.AssetsPath = DefaultAssetsPath
	}
	if !strings.HasSuffix(cfg.AssetsPath, "/") {
		cfg.AssetsPath += "/"
	}
	assets, err := loadAssets()
	if err != nil {
		panic(fmt.Errorf("graphiql: %w", err))
	}
	page, err := render(cfg, assets)
	if err != nil {
		panic(fmt.Errorf("graphiql: %w", err))
	}
	head, tail, ok := bytes.Cut(page, []byte(nonceMark))
	if !ok || bytes.Contains(tail, []byte(nonceMark)) {
		panic(fmt.Errorf("graphiql: page template must hold the style nonce exactly once"))
	}
	return &handler{
		pageHead:   head,
		pageTail:   tail,
		connectSrc: connectSources(cfg.Endpoint),
		assetsPath: cfg.AssetsPath,
		assets:     assets,
	}
}

// asset is one embedded file, with its gzip encoding made on first request: most processes
// never serve GraphiQL, and those that do should not pay for compression at start.
type asset struct {
	contentType string
	body        []byte
	// version is a digest of body: the page requests ?v=version, which may be cached forever.
	version string

	gzipOnce sync.Once
	gzipped  []byte
}

func (a *asset) gzipBody() []byte {
	a.gzipOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
		_, _ = zw.Write(a.body)                                  // writes to a bytes.Buffer cannot fail
		_ = zw.Close()
		a.gzipped = buf.Bytes()
	})
	return a.gzipped
}

// contentType of the kinds of file that the bundle consists of. Not mime.TypeByExtension: it
// reads the system's tables, which may say otherwise.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".txt":
		return "text/plain; charset=utf-8"
	default:
		return "application/octet-stream"
	}
}

// loadAssets reads every embedded asset. The page's entry files must be among them.
func loadAssets() (map[string]*asset, error) {
	entries, err := fs.ReadDir(assetFS, "assets")
	if err != nil {
		return nil, fmt.Errorf("read assets: %w", err)
	}
	assets := make(map[string]*asset, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		body, err := assetFS.ReadFile("assets/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read asset: %w", err)
		}
		sum := sha256.Sum256(body)
		assets[e.Name()] = &asset{
			contentType: contentType(e.Name()),
			body:        body,
			version:     hex.EncodeToString(sum[:8]),
		}
	}
	for _, name := range []string{scriptAsset, styleAsset} {
		if assets[name] == nil {
			return nil, fmt.Errorf("asset %s missing: run make ui", name)
		}
	}
	return assets, nil
}

// render executes the page template. html/template escapes Title for HTML, and Endpoint and
// the storage key for the data attributes that the page script reads.
func render(cfg Config, assets map[string]*asset) ([]byte, error) {
	tmpl, err := template.New("graphiql").Parse(pageSource)
	if err != nil {
		return nil, fmt.Errorf("parse page template: %w", err)
	}
	assetURL := func(name string) string {
		return cfg.AssetsPath + name + "?v=" + assets[name].version
	}
	var buf bytes.Buffer
	data := struct {
		Title, Endpoint, StorageKey, JS, CSS, Nonce string
	}{cfg.Title, cfg.Endpoint, storageKey, assetURL(scriptAsset), assetURL(styleAsset), nonceMark}
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("render page: %w", err)
	}
	return buf.Bytes(), nil
}

// connectSources are the CSP connect-src sources: this origin (which covers ws: and wss: to
// it), and the endpoint's origin in both schemes when the endpoint is absolute.
func connectSources(endpoint string) string {
	connect := "'self'"
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
		ws := "ws"
		if u.Scheme == "https" {
			ws = "wss"
		}
		connect += " " + u.Scheme + "://" + u.Host + " " + ws + "://" + u.Host
	}
	return connect
}

// contentSecurityPolicy allows the page nothing but this origin: its own script and
// stylesheet, the <style> elements that GraphiQL's dialogs add (with this response's nonce),
// the fonts and icons that GraphiQL's CSS carries as data: URLs, and connections to
// connectSrc.
func contentSecurityPolicy(nonce, connectSrc string) string {
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self' 'nonce-" + nonce + "'",
		"img-src 'self' data:",
		"font-src 'self' data:",
		"connect-src " + connectSrc,
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

type handler struct {
	// pageHead and pageTail are the rendered page around its style nonce.
	pageHead, pageTail []byte
	connectSrc         string
	assetsPath         string
	assets             map[string]*asset
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if name, ok := strings.CutPrefix(r.URL.Path, h.assetsPath); ok {
		h.serveAsset(w, r, name)
		return
	}
	// A nonce known in advance would let injected markup style the page; rand.Text is 130
	// random bits in an alphabet that CSP nonces allow.
	nonce := rand.Text()
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(h.pageHead)+len(nonce)+len(h.pageTail)))
	hdr.Set("X-Content-Type-Options", "nosniff")
	// The page reads a token from localStorage: no other site may frame it or inject into it.
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Content-Security-Policy", contentSecurityPolicy(nonce, h.connectSrc))
	hdr.Set("Referrer-Policy", "no-referrer")
	// The page names the current assets' versions, so it must be revalidated.
	hdr.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		// A failed write means the client left; nothing to do.
		_, _ = w.Write(h.pageHead)
		_, _ = io.WriteString(w, nonce)
		_, _ = w.Write(h.pageTail)
	}
}

func (h *handler) serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	a := h.assets[name]
	if a == nil {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Vary", "Accept-Encoding")
	if r.URL.Query().Get("v") == a.version {
		// This URL names these exact bytes.
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	body, etag := a.body, `"`+a.version+`"`
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		body, etag = a.gzipBody(), `"`+a.version+`-gz"`
		hdr.Set("Content-Encoding", "gzip")
	}
	hdr.Set("ETag", etag)
	// ServeContent answers If-None-Match and HEAD; the zero time sends no Last-Modified.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether an Accept-Encoding header value allows gzip (RFC 9110 §12.5.3):
// gzip (or x-gzip) with a q above 0, or else * with a q above 0.
func acceptsGzip(header string) bool {
	gzipQ, anyQ := -1.0, -1.0
	for _, item := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(item, ";")
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if v, ok := strings.CutPrefix(strings.ToLower(strings.TrimSpace(p)), "q="); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					f = 0 // an unreadable weight allows nothing
				}
				q = f
			}
		}
		switch strings.ToLower(strings.TrimSpace(coding)) {
		case "gzip", "x-gzip":
			gzipQ = max(gzipQ, q)
		case "*":
			anyQ = max(anyQ, q)
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return anyQ > 0
}
