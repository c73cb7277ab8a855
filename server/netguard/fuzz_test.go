package netguard

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// inetAton decodes host the way inet_aton(3) and the WHATWG URL parser do: one to four parts,
// each decimal, octal (leading 0) or hex (0x), the last filling the remaining bytes. It is an
// independent model of the numeric spellings the guard must never let through.
func inetAton(host string) (netip.Addr, bool) {
	host = strings.TrimSuffix(host, ".")
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var nums []uint64
	for _, p := range parts {
		base := 10
		switch {
		case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
			p, base = p[2:], 16
			if p == "" {
				p = "0"
			}
		case len(p) > 1 && p[0] == '0':
			p, base = p[1:], 8
		}
		n, err := strconv.ParseUint(p, base, 32)
		if err != nil || p == "" || p[0] == '+' {
			return netip.Addr{}, false
		}
		nums = append(nums, n)
	}
	var v uint64
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
		v |= n << (8 * (3 - i))
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func FuzzCheckURL(f *testing.F) {
	for _, tt := range refusedURLs {
		f.Add(tt.url)
	}
	for _, s := range []string{
		"https://example.com/hook", "http://93.184.216.34/", "https://[2606:4700::1]:8443/",
		"http://user:pass@example.com/", "http://[fe80::1%25eth0]/", "http://0x/", "http://1e1/",
		"http://%31%32%37.0.0.1/", "http://127.0.0.1.nip.io/", "http://[::ffff:0:7f00:1]/",
	} {
		f.Add(s)
	}
	// Names never resolve, so the fuzzer explores parsing only and needs no network.
	noDNS := resolverFunc(func(_ context.Context, _, host string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	})
	g := New(nil, noDNS)
	f.Fuzz(func(t *testing.T, raw string) {
		err := g.CheckURL(context.Background(), raw)
		var be *BlockedError
		if errors.As(err, &be) && be.Addr.IsValid() {
			if _, blocked := g.Blocked(be.Addr); !blocked {
				t.Fatalf("%q: refused for %s, which Blocked allows", raw, be.Addr)
			}
		}
		if err != nil {
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil {
			t.Fatalf("%q accepted, but url.Parse fails: %v", raw, perr)
		}
		if len(raw) > MaxURLLength || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil {
			t.Fatalf("%q accepted, want refused", raw)
		}
		host := u.Hostname()
		if a, perr := netip.ParseAddr(host); perr == nil {
			if reason, blocked := g.Blocked(a); blocked {
				t.Fatalf("%q accepted, but %s is blocked (%s)", raw, a, reason)
			}
			return
		}
		if a, ok := inetAton(host); ok {
			t.Fatalf("%q accepted, but its host is a numeric spelling of %s", raw, a)
		}
	})
}
