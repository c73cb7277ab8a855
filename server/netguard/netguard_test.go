package netguard

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// resolverFunc is a stub Resolver, so tests need no DNS.
type resolverFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

func (f resolverFunc) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return f(ctx, network, host)
}

// stubResolver answers from a fixed table and fails like a real resolver for other names.
func stubResolver(table map[string][]string) Resolver {
	return resolverFunc(func(_ context.Context, _, host string) ([]netip.Addr, error) {
		answers, ok := table[strings.TrimSuffix(strings.ToLower(host), ".")]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		var out []netip.Addr
		for _, a := range answers {
			out = append(out, netip.MustParseAddr(a))
		}
		return out, nil
	})
}

func testResolver() Resolver {
	return stubResolver(map[string][]string{
		"rebind.test":           {"127.0.0.1"},
		"mixed.test":            {"93.184.216.34", "10.0.0.1"},
		"example.com":           {"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"},
		"hooks.example.net":     {"2606:4700::1"},
		"receiver.test":         {"127.0.0.1"},
		"my_host.example.com":   {"93.184.216.34"},
		"xn--bcher-kva.example": {"2606:4700::1"},
	})
}

func mustParseAllowed(t *testing.T, csv string) []netip.Prefix {
	t.Helper()
	p, err := ParseAllowed(csv)
	if err != nil {
		t.Fatalf("ParseAllowed(%q): %v", csv, err)
	}
	return p
}

// dialAddr is what http.Transport would pass to DialContext for raw.
func dialAddr(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

func canceledContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// refusedURLs are the targets DESIGN.md §6 refuses, with the allowlist that admits each
// (empty: refused whatever the allowlist says, because the spelling itself is refused).
var refusedURLs = []struct {
	url   string
	allow string
}{
	{"http://127.0.0.1/", "127.0.0.0/8"},
	{"http://localhost/", "127.0.0.0/8,::1"},
	{"http://LOCALHOST./", "127.0.0.0/8,::1"},
	{"http://api.localhost/", "127.0.0.0/8,::1"},
	{"http://10.0.0.1/", "10.0.0.0/8"},
	{"http://172.16.0.1/", "172.16.0.0/12"},
	{"http://192.168.1.1:8080/", "192.168.1.1"},
	{"http://169.254.169.254/latest/meta-data/", "169.254.169.254/32"},
	{"http://100.64.0.1/", "100.64.0.0/10"},
	{"http://0.0.0.0/", "0.0.0.0/8"},
	{"http://[::1]/", "::1/128"},
	{"http://[fd00::1]/", "fc00::/7"},
	{"http://[fe80::1]/", "fe80::/10"},
	{"http://[::ffff:127.0.0.1]/", "127.0.0.0/8"},
	{"http://[::ffff:7f00:1]/", "::ffff:0:0/96"},
	{"http://[64:ff9b::7f00:1]/", "64:ff9b::/96"},
	{"http://[2002:a00:1::1]/", "2002::/16"},
	{"http://224.0.0.1/", "224.0.0.0/4"},
	{"http://255.255.255.255/", "255.255.255.255"},
	{"http://rebind.test/", "127.0.0.1"},
	{"http://mixed.test/", "10.0.0.0/8"},
	{"http://2130706433/", ""},
	{"http://0x7f000001/", ""},
	{"http://0X7F000001/", ""},
	{"http://0177.0.0.1/", ""},
	{"http://127.1/", ""},
	{"http://0x7f.0.0.1/", ""},
	{"http://1.2.3.4.5/", ""},
	{"http://example.0x/", ""},
}

func TestCheckURLRefuses(t *testing.T) {
	g := New(nil, testResolver())
	for _, tt := range refusedURLs {
		t.Run(tt.url, func(t *testing.T) {
			err := g.CheckURL(context.Background(), tt.url)
			var be *BlockedError
			if !errors.As(err, &be) {
				t.Fatalf("got %v, want a *BlockedError", err)
			}
			if be.Reason == "" || be.Host == "" {
				t.Fatalf("got %#v, want host and reason", be)
			}
		})
	}
}

func TestDialContextRefuses(t *testing.T) {
	g := New(nil, testResolver())
	for _, tt := range refusedURLs {
		t.Run(tt.url, func(t *testing.T) {
			conn, err := g.DialContext(context.Background(), "tcp", dialAddr(t, tt.url))
			if conn != nil {
				conn.Close()
			}
			var be *BlockedError
			if !errors.As(err, &be) {
				t.Fatalf("got %v, want a *BlockedError", err)
			}
		})
	}
}

func TestAllowlistAdmits(t *testing.T) {
	for _, tt := range refusedURLs {
		t.Run(tt.url, func(t *testing.T) {
			g := New(mustParseAllowed(t, tt.allow), testResolver())
			err := g.CheckURL(context.Background(), tt.url)
			if tt.allow == "" {
				// Numeric spellings are refused as spellings; an allowlist does not change that.
				var be *BlockedError
				if !errors.As(err, &be) {
					t.Fatalf("got %v, want a *BlockedError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckURL with allowlist %q: got %v, want nil", tt.allow, err)
			}
			// With a canceled context the guard lets the dial through and the dial itself fails,
			// so nothing leaves the machine.
			_, err = g.DialContext(canceledContext(), "tcp", dialAddr(t, tt.url))
			var be *BlockedError
			if errors.As(err, &be) {
				t.Fatalf("DialContext with allowlist %q: got %v, want the guard to let it through", tt.allow, err)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("DialContext: got %v, want %v", err, context.Canceled)
			}
		})
	}
}

func TestPublicTargetsAllowed(t *testing.T) {
	g := New(nil, testResolver())
	for _, raw := range []string{
		"http://93.184.216.34/",
		"https://[2606:4700::1]/hook",
		"https://example.com/webhooks/eventgate?x=1#frag",
		"HTTPS://Example.COM:8443/path",
		"https://hooks.example.net./",
		"http://8.8.8.8:8080/",
		"http://172.32.0.1/",
		"http://100.128.0.1/",
		"http://[2002:5db8:d822::1]/",    // 6to4 of a public address
		"http://[64:ff9b::808:808]/",     // NAT64 of a public address
		"http://[::ffff:93.184.216.34]/", // IPv4-mapped public address
		"https://unknown-name.test/",     // does not resolve: the dial-time check guards it
		"https://my_host.example.com/",
		"https://xn--bcher-kva.example/",
	} {
		t.Run(raw, func(t *testing.T) {
			if err := g.CheckURL(context.Background(), raw); err != nil {
				t.Fatalf("CheckURL: got %v, want nil", err)
			}
			if strings.Contains(raw, "unknown-name") {
				return
			}
			_, err := g.DialContext(canceledContext(), "tcp", dialAddr(t, raw))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("DialContext: got %v, want %v", err, context.Canceled)
			}
		})
	}
}

func TestCheckURLMalformed(t *testing.T) {
	g := New(nil, testResolver())
	tests := []struct {
		raw  string
		want string
	}{
		{"", "absolute http or https"},
		{"example.com/hook", "absolute http or https"},
		{"/relative/path", "absolute http or https"},
		{"ftp://example.com/", "absolute http or https"},
		{"javascript:alert(1)", "absolute http or https"},
		{"http:example.com", "must have a host"},
		{"http://", "must have a host"},
		{"http:///path", "must have a host"},
		{"http://user:pass@example.com/", "user name or password"},
		{"http://user@example.com/", "user name or password"},
		{"http://example.com:0/", "between 1 and 65535"},
		{"http://example.com:65536/", "between 1 and 65535"},
		{"http://example.com:/", "empty port"},
		{"http://example.com:http/", "not a valid URL"},
		{"https://example.com/" + strings.Repeat("a", MaxURLLength), "longer than 2048 bytes"},
		{"http://-bad.example/", "not a valid DNS name"},
		{"http://a..b/", "not a valid DNS name"},
		{"http://" + strings.Repeat("a", 64) + ".example/", "not a valid DNS name"},
		{"http://bücher.example/", "punycode"},
		{"http://１２７.０.０.１/", "punycode"},
		{"http://[fe80::1%25eth0]/", "zones are not allowed"},
		{"http://exa mple.com/", "not a valid URL"},
		{"http://[::1/", "not a valid URL"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			err := g.CheckURL(context.Background(), tt.raw)
			if err == nil {
				t.Fatalf("got nil, want an error containing %q", tt.want)
			}
			var be *BlockedError
			if errors.As(err, &be) {
				t.Fatalf("got *BlockedError %v, want a malformed-URL error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %q, want it to contain %q", err, tt.want)
			}
		})
	}
	if err := g.CheckURL(context.Background(), "https://example.com/"+strings.Repeat("a", MaxURLLength-len("https://example.com/"))); err != nil {
		t.Fatalf("URL of exactly %d bytes: got %v, want nil", MaxURLLength, err)
	}
}

func TestBlockedErrorMessage(t *testing.T) {
	g := New(nil, testResolver())
	tests := []struct{ raw, want string }{
		{"http://127.0.0.1/", "target 127.0.0.1 is in a refused network range (loopback)"},
		{"http://rebind.test/", "target rebind.test resolves to 127.0.0.1, which is in a refused network range (loopback)"},
		{"http://[::ffff:10.1.2.3]/", "target ::ffff:10.1.2.3 is in a refused network range (IPv4-mapped 10.1.2.3: private network (RFC 1918))"},
		{"http://2130706433/", "target 2130706433 is refused: numeric host spellings"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			err := g.CheckURL(context.Background(), tt.raw)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestBlocked(t *testing.T) {
	g := New(nil, nil)
	tests := []struct {
		addr   string
		reason string // "" = allowed
	}{
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"0.1.2.3", "this network"},
		{"10.255.255.255", "RFC 1918"},
		{"172.16.0.1", "RFC 1918"},
		{"172.31.255.255", "RFC 1918"},
		{"172.32.0.1", ""},
		{"192.168.0.1", "RFC 1918"},
		{"192.169.0.1", ""},
		{"169.254.169.254", "link-local"},
		{"100.64.0.1", "CGNAT"},
		{"100.127.255.255", "CGNAT"},
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.255", "broadcast"},
		{"8.8.8.8", ""},
		{"93.184.216.34", ""},
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"::7f00:1", "IPv4-compatible"},
		{"fc00::1", "unique local"},
		{"fdff:ffff::1", "unique local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"febf::1", "link-local"},
		{"fec0::1", "site-local"},
		{"ff02::1", "multicast"},
		{"::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1: loopback"},
		{"::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254: link-local"},
		{"::ffff:8.8.8.8", ""},
		{"::ffff:0:7f00:1", "IPv4-translated 127.0.0.1: loopback"},
		{"::ffff:0:808:808", ""},
		{"64:ff9b::7f00:1", "NAT64 127.0.0.1: loopback"},
		{"64:ff9b::a9fe:a9fe", "NAT64 169.254.169.254: link-local"},
		{"64:ff9b::808:808", ""},
		{"64:ff9b:1::1", "local-use NAT64"},
		{"2002:7f00:1::1", "6to4 127.0.0.1: loopback"},
		{"2002:c0a8:101::1", "6to4 192.168.1.1: private network (RFC 1918)"},
		{"2002:808:808::1", ""},
		{"2001:0:4136:e378::1", "Teredo"},
		{"2606:4700::1", ""},
		{"2a00:1450:4001:80b::200e", ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			reason, blocked := g.Blocked(netip.MustParseAddr(tt.addr))
			if tt.reason == "" {
				if blocked {
					t.Fatalf("got blocked (%s), want allowed", reason)
				}
				return
			}
			if !blocked || !strings.Contains(reason, tt.reason) {
				t.Fatalf("got (%q, %v), want blocked with a reason containing %q", reason, blocked, tt.reason)
			}
		})
	}
	if _, blocked := g.Blocked(netip.Addr{}); !blocked {
		t.Fatalf("zero Addr: got allowed, want blocked")
	}
}

func TestBlockedAllowlist(t *testing.T) {
	g := New(mustParseAllowed(t, "10.1.0.0/16, fd00:1::/32"), nil)
	tests := []struct {
		addr    string
		blocked bool
	}{
		{"10.1.2.3", false},
		{"::ffff:10.1.2.3", false},
		{"10.2.0.1", true},
		{"fd00:1::5", false},
		{"fd00:2::5", true},
		{"127.0.0.1", true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if _, blocked := g.Blocked(netip.MustParseAddr(tt.addr)); blocked != tt.blocked {
				t.Fatalf("got blocked=%v, want %v", blocked, tt.blocked)
			}
		})
	}
}

func TestParseAllowed(t *testing.T) {
	tests := []struct {
		csv     string
		want    string // prefixes joined by ","
		wantErr string
	}{
		{"", "", ""},
		{"  ", "", ""},
		{"10.0.0.0/8", "10.0.0.0/8", ""},
		{"10.0.0.0/8, 127.0.0.1 ,::1,", "10.0.0.0/8,127.0.0.1/32,::1/128", ""},
		{"192.168.1.7/24", "192.168.1.0/24", ""},
		{"fd00::/8", "fd00::/8", ""},
		{"10.0.0.0/8,10.0.0.0/33", "", `"10.0.0.0/33"`},
		{"10.0.0.0/8,intranet", "", `"intranet"`},
		{"010.0.0.1", "", `"010.0.0.1"`},
		{"fe80::1%eth0", "", `"fe80::1%eth0"`},
	}
	for _, tt := range tests {
		t.Run(tt.csv, func(t *testing.T) {
			got, err := ParseAllowed(tt.csv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want nil", err)
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if g := strings.Join(s, ","); g != tt.want {
				t.Fatalf("got %q, want %q", g, tt.want)
			}
		})
	}
}

func TestCheckURLAcceptsWhenResolutionFails(t *testing.T) {
	failing := resolverFunc(func(context.Context, string, string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "server misbehaving", Name: "hooks.example.org", IsTemporary: true}
	})
	g := New(nil, failing)
	if err := g.CheckURL(context.Background(), "https://hooks.example.org/"); err != nil {
		t.Fatalf("CheckURL: got %v, want nil", err)
	}
	_, err := g.DialContext(context.Background(), "tcp", "hooks.example.org:443")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		t.Fatalf("DialContext: got %v, want a *net.DNSError", err)
	}
}

// A name that passes CheckURL and then answers with loopback must still be refused at dial.
func TestDialContextDNSRebinding(t *testing.T) {
	var calls atomic.Int32
	rebinding := resolverFunc(func(context.Context, string, string) ([]netip.Addr, error) {
		if calls.Add(1) == 1 {
			return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	})
	g := New(nil, rebinding)
	if err := g.CheckURL(context.Background(), "http://rebind.test/"); err != nil {
		t.Fatalf("CheckURL: got %v, want nil", err)
	}
	_, err := g.DialContext(context.Background(), "tcp", "rebind.test:80")
	var be *BlockedError
	if !errors.As(err, &be) || be.Addr != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("DialContext: got %v, want a *BlockedError for 127.0.0.1", err)
	}
}

func TestDialContextRejectsOtherNetworks(t *testing.T) {
	g := New(mustParseAllowed(t, "0.0.0.0/0"), nil)
	if _, err := g.DialContext(context.Background(), "udp", "127.0.0.1:53"); err == nil {
		t.Fatalf("got nil, want an error for udp")
	}
}

// receiver starts an HTTP server on 127.0.0.1 that answers "ok".
func receiver(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func client(t *testing.T, g *Guard) *http.Client {
	t.Helper()
	tr := g.NewTransport()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func get(c *http.Client, raw string) (string, error) {
	resp, err := c.Get(raw)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestHTTPClientThroughGuard(t *testing.T) {
	srv := receiver(t)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	viaName := "http://receiver.test:" + strconv.Itoa(port) + "/"

	t.Run("refused without allowlist", func(t *testing.T) {
		c := client(t, New(nil, testResolver()))
		for _, raw := range []string{srv.URL, viaName} {
			_, err := get(c, raw)
			var be *BlockedError
			if !errors.As(err, &be) {
				t.Fatalf("GET %s: got %v, want a *BlockedError", raw, err)
			}
		}
	})
	t.Run("allowed with 127.0.0.0/8", func(t *testing.T) {
		c := client(t, New(mustParseAllowed(t, "127.0.0.0/8"), testResolver()))
		// receiver.test exists only in the stub resolver: success proves the guard dialed the
		// address it checked, not the name.
		for _, raw := range []string{srv.URL, viaName} {
			body, err := get(c, raw)
			if err != nil || body != "ok" {
				t.Fatalf("GET %s: got (%q, %v), want (\"ok\", nil)", raw, body, err)
			}
		}
	})
	t.Run("plain transport with guard dialer", func(t *testing.T) {
		g := New(mustParseAllowed(t, "127.0.0.1"), nil)
		tr := &http.Transport{DialContext: g.DialContext}
		t.Cleanup(tr.CloseIdleConnections)
		body, err := get(&http.Client{Transport: tr}, srv.URL)
		if err != nil || body != "ok" {
			t.Fatalf("got (%q, %v), want (\"ok\", nil)", body, err)
		}
	})
}

func TestNumericSpellingsFollowTheAllowlist(t *testing.T) {
	for _, tc := range []struct {
		host string
		want string
	}{
		{"2130706433", "127.0.0.1"}, {"0x7f000001", "127.0.0.1"}, {"0177.0.0.1", "127.0.0.1"},
		{"127.1", "127.0.0.1"}, {"10.0x1", "10.0.0.1"}, {"134744072", "8.8.8.8"},
	} {
		a, ok := parseInetAton(tc.host)
		if !ok || a.String() != tc.want {
			t.Errorf("parseInetAton(%q) = %v, %v; want %s", tc.host, a, ok, tc.want)
		}
	}
	for _, bad := range []string{"256.1.1.1", "1.2.3.4.5", "0x", "1.2.3.256", "99999999999"} {
		if a, ok := parseInetAton(bad); ok {
			t.Errorf("parseInetAton(%q) = %v, want a failure", bad, a)
		}
	}
	ctx := context.Background()
	closed := New(nil, nil)
	open := New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, nil)
	for _, u := range []string{"http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/"} {
		if err := closed.CheckURL(ctx, u); err == nil {
			t.Errorf("%s accepted without an allowlist", u)
		}
		if err := open.CheckURL(ctx, u); err != nil {
			t.Errorf("%s refused although 127.0.0.0/8 is allowed: %v", u, err)
		}
	}
	// A public address written as a number stays refused: only the allowlist opens numeric spellings.
	if err := open.CheckURL(ctx, "http://134744072/"); err == nil {
		t.Error("numeric spelling of a public address accepted")
	}
	// At dial time the spelling is dialled as the address it stands for.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	client := &http.Client{Transport: &http.Transport{DialContext: open.DialContext}}
	resp, err := client.Get("http://2130706433:" + port + "/")
	if err != nil {
		t.Fatalf("dial numeric spelling with allowlist: %v", err)
	}
	resp.Body.Close()
}
