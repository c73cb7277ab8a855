package graphiql

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// do sends one request to h through a real HTTP server and returns the response with its
// body read. The client does not decompress: a test that wants gzip asks for it itself.
func do(t *testing.T, h http.Handler, method, target string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+target, nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if req.Header.Get("Accept-Encoding") == "" {
		req.Header.Set("Accept-Encoding", "identity")
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res, body
}

// pageRefs returns the src and href URLs of the page.
func pageRefs(t *testing.T, page []byte) []string {
	t.Helper()
	var refs []string
	for _, m := range regexp.MustCompile(`\b(?:src|href)="([^"]*)"`).FindAllSubmatch(page, -1) {
		refs = append(refs, strings.ReplaceAll(string(m[1]), "&amp;", "&"))
	}
	if len(refs) == 0 {
		t.Fatal("got no src or href in the page, want the script and the stylesheet")
	}
	return refs
}

// pageNonce returns the style nonce that the page hands to its script.
func pageNonce(t *testing.T, page []byte) string {
	t.Helper()
	m := regexp.MustCompile(`<link id="eg-style" [^>]*nonce="([^"]*)"`).FindSubmatch(page)
	if m == nil {
		t.Fatal("got no nonce on the stylesheet link, want one")
	}
	return string(m[1])
}

func TestPage(t *testing.T) {
	tests := []struct {
		name         string
		cfg          Config
		wantContains []string
		wantConnect  string
	}{
		{
			name: "defaults",
			cfg:  Config{},
			wantContains: []string{
				"<title>eventgate GraphiQL</title>",
				`data-endpoint="/query"`,
				`data-storage-key="eventgate.graphiql.token"`,
				`<script src="/graphiql/assets/graphiql.js?v=`,
				`<link id="eg-style" rel="stylesheet" href="/graphiql/assets/graphiql.css?v=`,
			},
			wantConnect: "connect-src 'self';",
		},
		{
			name: "custom",
			cfg:  Config{Title: "Admin <API>", Endpoint: "/api/query", AssetsPath: "/ide/static"},
			wantContains: []string{
				"<title>Admin &lt;API&gt;</title>",
				`data-endpoint="/api/query"`,
				`<script src="/ide/static/graphiql.js?v=`,
			},
			wantConnect: "connect-src 'self';",
		},
		{
			name:         "absolute endpoint is allowed to connect",
			cfg:          Config{Endpoint: "https://gw.example.com:8443/query"},
			wantContains: []string{`data-endpoint="https://gw.example.com:8443/query"`},
			wantConnect:  "connect-src 'self' https://gw.example.com:8443 wss://gw.example.com:8443;",
		},
		{
			name:         "endpoint cannot break out of its attribute",
			cfg:          Config{Endpoint: `/q"><script>alert(1)</script>`},
			wantContains: []string{`data-endpoint="/q&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`},
			wantConnect:  "connect-src 'self';",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := do(t, Handler(tt.cfg), http.MethodGet, "/graphiql", nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("got status %d, want 200", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("got Content-Type %q, want text/html; charset=utf-8", got)
			}
			for _, want := range tt.wantContains {
				if !bytes.Contains(body, []byte(want)) {
					t.Errorf("page lacks %q", want)
				}
			}
			csp := res.Header.Get("Content-Security-Policy")
			nonce := pageNonce(t, body)
			for _, want := range []string{"default-src 'none';", "script-src 'self';", "style-src 'self' 'nonce-" + nonce + "';", "frame-ancestors 'none'", tt.wantConnect} {
				if !strings.Contains(csp, want) {
					t.Errorf("got Content-Security-Policy %q, want it to contain %q", csp, want)
				}
			}
			// Nothing external and no inline script: the CSP would block both.
			for _, ref := range pageRefs(t, body) {
				if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
					t.Errorf("got reference %q, want a path on this origin", ref)
				}
			}
			if n := bytes.Count(body, []byte("<script")); n != 1 {
				t.Errorf("got %d script elements, want 1 (the bundle)", n)
			}
		})
	}
}

// TestNonce checks that every response has its own unguessable style nonce.
func TestNonce(t *testing.T) {
	h := Handler(Config{})
	seen := map[string]bool{}
	for range 3 {
		res, body := do(t, h, http.MethodGet, "/graphiql", nil)
		nonce := pageNonce(t, body)
		if len(nonce) < 22 {
			t.Errorf("got nonce %q, want at least 128 bits", nonce)
		}
		if seen[nonce] {
			t.Errorf("got nonce %q twice, want a new one per response", nonce)
		}
		seen[nonce] = true
		if got, want := res.Header.Get("Content-Security-Policy"), "'nonce-"+nonce+"'"; !strings.Contains(got, want) {
			t.Errorf("got Content-Security-Policy %q, want it to contain %q", got, want)
		}
		if got, want := res.Header.Get("Content-Length"), strconv.Itoa(len(body)); got != want {
			t.Errorf("got Content-Length %s, want %s", got, want)
		}
	}
}

// TestPageAssets fetches what the page references, as a browser would.
func TestPageAssets(t *testing.T) {
	h := Handler(Config{})
	_, page := do(t, h, http.MethodGet, "/graphiql", nil)
	wantType := map[string]string{
		".js":  "text/javascript; charset=utf-8",
		".css": "text/css; charset=utf-8",
	}
	for _, ref := range pageRefs(t, page) {
		t.Run(ref, func(t *testing.T) {
			res, body := do(t, h, http.MethodGet, ref, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("got status %d, want 200", res.StatusCode)
			}
			u, err := url.Parse(ref)
			if err != nil {
				t.Fatalf("parse %q: %v", ref, err)
			}
			ext := path.Ext(u.Path)
			if got := res.Header.Get("Content-Type"); got != wantType[ext] {
				t.Errorf("got Content-Type %q, want %q", got, wantType[ext])
			}
			if got := res.Header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
				t.Errorf("got Cache-Control %q, want immutable for a versioned URL", got)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("got X-Content-Type-Options %q, want nosniff", got)
			}
			if len(body) < 10_000 {
				t.Errorf("got a %d-byte asset, want the bundle", len(body))
			}
			if ext == ".js" {
				// The token travels in the Authorization header and in connection_init.
				for _, want := range []string{"Authorization", "connectionParams", "localStorage", "graphql-transport-ws"} {
					if !bytes.Contains(body, []byte(want)) {
						t.Errorf("script lacks %q", want)
					}
				}
			}
		})
	}
}

func TestAssetEncodingAndCaching(t *testing.T) {
	h := Handler(Config{})
	_, plain := do(t, h, http.MethodGet, "/graphiql/assets/graphiql.js", nil)

	t.Run("gzip", func(t *testing.T) {
		res, body := do(t, h, http.MethodGet, "/graphiql/assets/graphiql.js", http.Header{"Accept-Encoding": {"br, gzip;q=0.8"}})
		if got := res.Header.Get("Content-Encoding"); got != "gzip" {
			t.Fatalf("got Content-Encoding %q, want gzip", got)
		}
		if len(body) >= len(plain) {
			t.Errorf("got %d gzipped bytes, want fewer than the %d plain ones", len(body), len(plain))
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip reader: %v", err)
		}
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("gunzip: %v", err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("got %d bytes after gunzip, want the %d plain bytes", len(got), len(plain))
		}
	})

	t.Run("identity", func(t *testing.T) {
		res, _ := do(t, h, http.MethodGet, "/graphiql/assets/graphiql.js", nil)
		if got := res.Header.Get("Content-Encoding"); got != "" {
			t.Errorf("got Content-Encoding %q, want none", got)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("got Cache-Control %q without a version, want no-cache", got)
		}
	})

	t.Run("wrong version is not cached", func(t *testing.T) {
		res, _ := do(t, h, http.MethodGet, "/graphiql/assets/graphiql.js?v=0123456789abcdef", nil)
		if got := res.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("got Cache-Control %q, want no-cache", got)
		}
	})

	for _, enc := range []string{"identity", "gzip"} {
		t.Run("revalidate "+enc, func(t *testing.T) {
			res, _ := do(t, h, http.MethodGet, "/graphiql/assets/graphiql.css", http.Header{"Accept-Encoding": {enc}})
			etag := res.Header.Get("ETag")
			if etag == "" {
				t.Fatal("got no ETag, want one")
			}
			res, body := do(t, h, http.MethodGet, "/graphiql/assets/graphiql.css", http.Header{"Accept-Encoding": {enc}, "If-None-Match": {etag}})
			if res.StatusCode != http.StatusNotModified || len(body) != 0 {
				t.Errorf("got status %d with %d bytes, want 304 with none", res.StatusCode, len(body))
			}
		})
	}
}

func TestRequests(t *testing.T) {
	h := Handler(Config{})
	tests := []struct {
		method, target string
		want           int
		wantEmpty      bool
	}{
		{http.MethodGet, "/graphiql", http.StatusOK, false},
		{http.MethodGet, "/", http.StatusOK, false},
		{http.MethodHead, "/graphiql", http.StatusOK, true},
		{http.MethodPost, "/graphiql", http.StatusMethodNotAllowed, false},
		{http.MethodGet, "/graphiql/assets/graphiql.js.LEGAL.txt", http.StatusOK, false},
		{http.MethodHead, "/graphiql/assets/graphiql.js", http.StatusOK, true},
		{http.MethodPost, "/graphiql/assets/graphiql.js", http.StatusMethodNotAllowed, false},
		{http.MethodGet, "/graphiql/assets/", http.StatusNotFound, false},
		{http.MethodGet, "/graphiql/assets/nope.js", http.StatusNotFound, false},
		{http.MethodGet, "/graphiql/assets/../index.html", http.StatusNotFound, false},
		{http.MethodGet, "/graphiql/assets/assets/graphiql.js", http.StatusNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			res, body := do(t, h, tt.method, tt.target, nil)
			if res.StatusCode != tt.want {
				t.Errorf("got status %d, want %d", res.StatusCode, tt.want)
			}
			if tt.wantEmpty && len(body) != 0 {
				t.Errorf("got a %d-byte body, want none", len(body))
			}
			if !tt.wantEmpty && tt.want == http.StatusOK && len(body) == 0 {
				t.Error("got an empty body, want content")
			}
		})
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"identity", false},
		{"gzip", true},
		{"GZip", true},
		{"x-gzip", true},
		{"gzip, deflate, br", true},
		{"br;q=1.0, gzip;q=0.5", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0", false},
		{"*", true},
		{"*;q=0", false},
		{"*;q=0, gzip", true},
		{"gzip;q=0, *", false},
		{"gzip;q=oops", false},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			if got := acceptsGzip(tt.header); got != tt.want {
				t.Errorf("got acceptsGzip(%q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}
