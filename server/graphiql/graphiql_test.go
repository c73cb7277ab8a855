package graphiql

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method string) (*http.Response, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+"/graphiql", nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res, string(body)
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name         string
		cfg          Config
		wantContains []string
	}{
		{
			name: "defaults",
			cfg:  Config{},
			wantContains: []string{
				"<title>eventgate GraphiQL</title>",
				`var endpoint = "/query";`,
			},
		},
		{
			name: "custom",
			cfg:  Config{Title: "Admin <API>", Endpoint: "/api/query"},
			wantContains: []string{
				"<title>Admin &lt;API&gt;</title>",
				`var endpoint = "/api/query";`,
			},
		},
		{
			name:         "endpoint cannot break out of the script",
			cfg:          Config{Endpoint: `/q";alert(1);"</script>`},
			wantContains: []string{`var endpoint = "/q\";alert(1);\"\u003c/script\u003e";`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := get(t, Handler(tt.cfg), http.MethodGet)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("got status %d, want 200", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("got Content-Type %q, want text/html; charset=utf-8", got)
			}
			for _, want := range tt.wantContains {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			// The token travels in headers and connection_init, and the page uses both.
			for _, want := range []string{"Authorization", "connectionParams", "createFetcher", "localStorage"} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %q", want)
				}
			}
		})
	}
}

func TestMethods(t *testing.T) {
	h := Handler(Config{})
	tests := []struct {
		method    string
		want      int
		wantEmpty bool
	}{
		{http.MethodGet, http.StatusOK, false},
		{http.MethodHead, http.StatusOK, true},
		{http.MethodPost, http.StatusMethodNotAllowed, false},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			res, body := get(t, h, tt.method)
			if res.StatusCode != tt.want {
				t.Errorf("got status %d, want %d", res.StatusCode, tt.want)
			}
			if tt.wantEmpty && body != "" {
				t.Errorf("got a %d-byte body, want none", len(body))
			}
			if got := res.Header.Get("X-Frame-Options"); tt.want == http.StatusOK && got != "DENY" {
				t.Errorf("got X-Frame-Options %q, want DENY", got)
			}
		})
	}
}
