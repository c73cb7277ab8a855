// Package netguard keeps webhooks from reaching the gateway's own network (SSRF). Webhook URLs
// are user input, and a POST from inside the deployment can reach loopback admin ports, cloud
// metadata (169.254.169.254) or private services. The Guard refuses those targets twice
// (DESIGN.md §6): when a URL is stored (CheckURL) and when the webhook client dials (DialContext),
// where it resolves the name itself, checks every address and dials the checked IP, so a name
// that changes its answer between the two (DNS rebinding) gains nothing.
//
// Addresses inside an operator's EVENTGATE_ALLOWED_TARGETS prefixes are never refused.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MaxURLLength bounds a webhook URL, in bytes.
const MaxURLLength = 2048

// lookupTimeout bounds the name resolution of CheckURL, so that a slow DNS server cannot hold a
// mutation for long; the dial-time check still guards a URL accepted without an answer.
const lookupTimeout = 5 * time.Second

// Resolver resolves host names; *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Guard checks webhook targets. It is immutable and safe for concurrent use.
type Guard struct {
	allowed  []netip.Prefix
	resolver Resolver
	ranges   ranges
	dialer   net.Dialer
}

// New makes a Guard that lets addresses inside allowed through and resolves names with
// resolver (nil means net.DefaultResolver).
func New(allowed []netip.Prefix, resolver Resolver) *Guard {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	g := &Guard{
		allowed:  append([]netip.Prefix(nil), allowed...),
		resolver: resolver,
		ranges:   newRanges(),
	}
	g.dialer = net.Dialer{KeepAlive: 30 * time.Second, ControlContext: g.control}
	return g
}

// control runs just before each connect, with the address actually being connected. DialContext
// only ever dials addresses it has checked; this second look keeps that true should the dialer
// ever be handed a name.
func (g *Guard) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: not an IP address and port", address)
	}
	return g.check(ap.Addr().String(), ap.Addr())
}

// ParseAllowed parses EVENTGATE_ALLOWED_TARGETS: comma-separated CIDRs or single IP addresses.
// Blank entries are skipped; host bits of a CIDR are cleared ("10.1.2.3/8" means 10.0.0.0/8).
// The error names the bad entry; the caller adds the setting's name.
func ParseAllowed(csv string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for entry := range strings.SplitSeq(csv, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if strings.Contains(entry, "/") {
			p, err := netip.ParsePrefix(entry)
			if err != nil {
				return nil, fmt.Errorf("entry %q is not a valid CIDR: %w", entry, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(entry)
		if err != nil {
			return nil, fmt.Errorf("entry %q is not a CIDR or an IP address", entry)
		}
		if a.Zone() != "" {
			return nil, fmt.Errorf("entry %q: an IPv6 zone is not allowed", entry)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// BlockedError reports a refused target.
type BlockedError struct {
	// Host is the host as written in the URL or dial address.
	Host string
	// Addr is the refused address; it is the zero Addr when the host itself is refused
	// (a numeric spelling that is not a plain dotted quad).
	Addr netip.Addr
	// Reason says why, e.g. "loopback" or "private network (RFC 1918)".
	Reason string
}

func (e *BlockedError) Error() string {
	switch {
	case !e.Addr.IsValid():
		return fmt.Sprintf("target %s is refused: %s", e.Host, e.Reason)
	case e.Host == e.Addr.String():
		return fmt.Sprintf("target %s is in a refused network range (%s)", e.Host, e.Reason)
	default:
		return fmt.Sprintf("target %s resolves to %s, which is in a refused network range (%s)", e.Host, e.Addr, e.Reason)
	}
}

// CheckURL checks a webhook URL when it is created or updated. It returns a *BlockedError when
// the target is refused, and another error, whose message is fit for the user once the caller
// names the field (e.g. "must be an absolute http or https URL"), when the URL is malformed: not absolute http or https, no host, longer than MaxURLLength, with credentials,
// a bad port, or a host that is neither a DNS name nor an IP address in canonical form.
// A DNS name is resolved and every address is checked; when it does not resolve (no network,
// NXDOMAIN) the URL is accepted, because the dial-time check still guards it.
func (g *Guard) CheckURL(ctx context.Context, raw string) error {
	if len(raw) > MaxURLLength {
		return fmt.Errorf("must not be longer than %d bytes", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, which may be long; the cause is enough.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("is not a valid URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("must be an absolute http or https URL")
	}
	if u.Opaque != "" || u.Host == "" {
		return errors.New("must have a host, as in https://example.com/hook")
	}
	if u.User != nil {
		return errors.New("must not contain a user name or password")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not between 1 and 65535", p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return errors.New("has an empty port")
	}

	host := u.Hostname()
	kind, addr, err := classify(host, strings.HasPrefix(u.Host, "["))
	if err != nil {
		return err
	}
	switch kind {
	case hostIP:
		return g.check(host, addr)
	case hostNumeric:
		_, err := g.numeric(host)
		return err
	}
	addrs, err := g.lookup(ctx, host, lookupTimeout)
	if err != nil {
		return nil // the dial-time check guards it
	}
	return g.checkAll(host, addrs)
}

// DialContext dials addr ("host:port") for the webhook HTTP client's Transport. It resolves the
// host itself, refuses the dial when ANY address is blocked, and then dials the checked
// addresses (never the name) in order until one answers. Only TCP networks are supported.
// A refused target gives a *BlockedError.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("dial %s %s: network not supported", network, addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	kind, ip, err := classify(host, strings.Contains(host, ":"))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	var addrs []netip.Addr
	switch kind {
	case hostIP:
		addrs = []netip.Addr{ip}
	case hostNumeric:
		a, err := g.numeric(host)
		if err != nil {
			return nil, err
		}
		addrs = []netip.Addr{a}
	default:
		addrs, err = g.lookup(ctx, host, 0)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
	}
	if err := g.checkAll(host, addrs); err != nil {
		return nil, err
	}
	addrs = filterFamily(addrs, network)
	if len(addrs) == 0 {
		return nil, fmt.Errorf("dial %s %s: no address of that family", network, addr)
	}

	var firstErr error
	for i, a := range addrs {
		attemptCtx, cancel := attemptContext(ctx, len(addrs)-i)
		conn, err := g.dialer.DialContext(attemptCtx, network, net.JoinHostPort(a.String(), port))
		cancel()
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// NewTransport returns an HTTP transport for webhook requests whose every connection goes
// through g.DialContext. It uses no proxy: through a proxy the guard would check the proxy's
// address instead of the target's.
func (g *Guard) NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// attemptContext gives one of the remaining dial attempts its share of ctx's time, so that an
// address that never answers cannot use up the time of the others (as net.Dialer does).
func attemptContext(ctx context.Context, remaining int) (context.Context, context.CancelFunc) {
	const minAttempt = 2 * time.Second
	deadline, ok := ctx.Deadline()
	if !ok || remaining <= 1 {
		return context.WithCancel(ctx)
	}
	share := time.Until(deadline) / time.Duration(remaining)
	if share < minAttempt {
		share = minAttempt
	}
	return context.WithTimeout(ctx, share)
}

func filterFamily(addrs []netip.Addr, network string) []netip.Addr {
	if network == "tcp" {
		return addrs
	}
	var out []netip.Addr
	for _, a := range addrs {
		if a.Unmap().Is4() == (network == "tcp4") {
			out = append(out, a)
		}
	}
	return out
}

// lookup resolves a DNS name. Names under "localhost" are loopback by definition (RFC 6761), so
// they are answered here whatever the resolver says.
func (g *Guard) lookup(ctx context.Context, host string, timeout time.Duration) ([]netip.Addr, error) {
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}, nil
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	addrs, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	return addrs, nil
}

func (g *Guard) checkAll(host string, addrs []netip.Addr) error {
	for _, a := range addrs {
		if err := g.check(host, a); err != nil {
			return err
		}
	}
	return nil
}

func (g *Guard) check(host string, a netip.Addr) error {
	if reason, blocked := g.Blocked(a); blocked {
		return &BlockedError{Host: host, Addr: a, Reason: reason}
	}
	return nil
}

// numeric decodes a numeric host spelling the way inet_aton does. Such a spelling is refused
// unless an allowed prefix contains the address it stands for (DESIGN.md §6: refused "unless
// EVENTGATE_ALLOWED_TARGETS permits them"), and is then dialled as that address.
func (g *Guard) numeric(host string) (netip.Addr, error) {
	a, ok := parseInetAton(strings.TrimSuffix(host, "."))
	if ok {
		for _, p := range g.allowed {
			if p.Contains(a) {
				return a, nil
			}
		}
	}
	return netip.Addr{}, &BlockedError{Host: host,
		Reason: "numeric host spellings other than a dotted quad (a.b.c.d) are not accepted unless EVENTGATE_ALLOWED_TARGETS covers the address"}
}

// parseInetAton reads "a", "a.b", "a.b.c" or "a.b.c.d" with decimal, octal (leading 0) or hex
// (0x) parts, the last part filling the remaining bytes, as inet_aton does.
func parseInetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) < 1 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	var vals []uint64
	for _, p := range parts {
		base := 10
		switch {
		case len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X"):
			p, base = p[2:], 16
		case len(p) > 1 && p[0] == '0':
			p, base = p[1:], 8
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals = append(vals, v)
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 255 {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if last >= 1<<(8*(5-len(vals))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// Blocked reports whether a connection to addr is refused, and why. Addresses inside an
// allowed prefix are never refused; for an IPv4-mapped address both its forms are looked up.
func (g *Guard) Blocked(addr netip.Addr) (reason string, blocked bool) {
	if !addr.IsValid() {
		return "invalid address", true
	}
	// Prefix.Contains never matches an address with a zone, so drop it before any lookup.
	addr = addr.WithZone("")
	for _, p := range g.allowed {
		if p.Contains(addr) || p.Contains(addr.Unmap()) {
			return "", false
		}
	}
	return g.ranges.refused(addr)
}

// rangeReason names a refused range.
type rangeReason struct {
	prefix netip.Prefix
	reason string
}

// embedding is an IPv6 range whose addresses carry an IPv4 address at offset: the IPv4
// address decides.
type embedding struct {
	prefix netip.Prefix
	form   string
	offset int
}

// ranges holds the fixed refused ranges of DESIGN.md §6. Each Guard builds its own copy, so
// nothing at package level can be changed.
type ranges struct {
	v4, v6 []rangeReason
	embeds []embedding
}

func newRanges() ranges {
	p := netip.MustParsePrefix
	return ranges{
		v4: []rangeReason{
			{p("0.0.0.0/8"), `"this network" (0.0.0.0/8)`},
			{p("10.0.0.0/8"), "private network (RFC 1918)"},
			{p("100.64.0.0/10"), "shared address space (CGNAT)"},
			{p("127.0.0.0/8"), "loopback"},
			{p("169.254.0.0/16"), "link-local"},
			{p("172.16.0.0/12"), "private network (RFC 1918)"},
			{p("192.168.0.0/16"), "private network (RFC 1918)"},
			{p("224.0.0.0/4"), "multicast"},
			{p("255.255.255.255/32"), "broadcast"},
			{p("240.0.0.0/4"), "reserved (240.0.0.0/4)"},
		},
		v6: []rangeReason{
			{p("::/128"), "unspecified"},
			{p("::1/128"), "loopback"},
			// Deprecated IPv4-compatible addresses (::a.b.c.d) have no public use.
			{p("::/96"), "IPv4-compatible (deprecated)"},
			// Local-use NAT64 (RFC 8215) translates into the operator's own IPv4 network.
			{p("64:ff9b:1::/48"), "local-use NAT64"},
			// Teredo hides IPv4 addresses behind an obfuscation; nothing needs it any more.
			{p("2001::/32"), "Teredo"},
			{p("fc00::/7"), "unique local"},
			{p("fe80::/10"), "link-local"},
			{p("fec0::/10"), "site-local (deprecated)"},
			{p("ff00::/8"), "multicast"},
		},
		embeds: []embedding{
			{p("::ffff:0:0:0/96"), "IPv4-translated", 12},
			{p("64:ff9b::/96"), "NAT64", 12},
			{p("2002::/16"), "6to4", 2},
		},
	}
}

// refused applies the fixed ranges, looking through the IPv6 forms that carry an IPv4 address.
func (r *ranges) refused(a netip.Addr) (string, bool) {
	if a.Is4In6() {
		return r.embedded("IPv4-mapped", a.Unmap())
	}
	if a.Is4() {
		return lookupRange(r.v4, a)
	}
	for _, e := range r.embeds {
		if e.prefix.Contains(a) {
			b := a.As16()
			return r.embedded(e.form, netip.AddrFrom4([4]byte(b[e.offset:e.offset+4])))
		}
	}
	return lookupRange(r.v6, a)
}

func (r *ranges) embedded(form string, v4 netip.Addr) (string, bool) {
	if reason, blocked := lookupRange(r.v4, v4); blocked {
		return form + " " + v4.String() + ": " + reason, true
	}
	return "", false
}

func lookupRange(table []rangeReason, a netip.Addr) (string, bool) {
	for _, r := range table {
		if r.prefix.Contains(a) {
			return r.reason, true
		}
	}
	return "", false
}

type hostKind int

const (
	hostName    hostKind = iota // a DNS name, to be resolved
	hostIP                      // a canonical IP literal
	hostNumeric                 // a number that some parsers read as an IPv4 address
)

// classify sorts a URL or dial host. bracketed says it was written in brackets, which only an
// IPv6 literal may be. Anything else must be a dotted quad or a DNS name: inet_aton and the
// WHATWG URL parser read "2130706433", "0x7f000001", "0177.0.0.1" and "127.1" as 127.0.0.1, so
// a name whose last label is a number is refused whatever it would resolve to.
func classify(host string, bracketed bool) (hostKind, netip.Addr, error) {
	if host == "" {
		return 0, netip.Addr{}, errors.New("must have a host")
	}
	if bracketed {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return 0, netip.Addr{}, fmt.Errorf("host [%s] is not an IPv6 address", host)
		}
		if a.Zone() != "" {
			return 0, netip.Addr{}, fmt.Errorf("host [%s]: IPv6 zones are not allowed", host)
		}
		return hostIP, a, nil
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
		return hostIP, a, nil
	}
	if err := checkName(host); err != nil {
		return 0, netip.Addr{}, err
	}
	if endsInNumber(host) {
		return hostNumeric, netip.Addr{}, nil
	}
	return hostName, netip.Addr{}, nil
}

// checkName accepts DNS names in ASCII: labels of letters, digits, '-' and '_' (seen in real
// host names), 1 to 63 bytes, 253 in all, with an optional final dot.
func checkName(host string) error {
	name := strings.TrimSuffix(host, ".")
	if len(name) == 0 || len(name) > 253 {
		return fmt.Errorf("host %q is not a valid DNS name", host)
	}
	for label := range strings.SplitSeq(name, ".") {
		if len(label) == 0 || len(label) > 63 {
			return fmt.Errorf("host %q is not a valid DNS name: empty or over-long label", host)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q is not a valid DNS name: label starts or ends with '-'", host)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if c >= 0x80 {
				return fmt.Errorf("host %q is not ASCII: write an internationalized name in its xn-- (punycode) form", host)
			}
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host %q is not a valid DNS name: character %q", host, c)
			}
		}
	}
	return nil
}

// endsInNumber applies the WHATWG URL rule: a host whose last label is all decimal digits, or
// "0x" followed by hex digits, is parsed as an IPv4 address by browsers and curl-like clients.
func endsInNumber(host string) bool {
	name := strings.TrimSuffix(host, ".")
	last := name[strings.LastIndexByte(name, '.')+1:]
	digits := "0123456789"
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		last, digits = last[2:], "0123456789abcdefABCDEF"
	}
	for i := 0; i < len(last); i++ {
		if !strings.ContainsRune(digits, rune(last[i])) {
			return false
		}
	}
	return true
}
