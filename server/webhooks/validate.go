package webhooks

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/eventgate/eventgate/server/apperr"
	"github.com/eventgate/eventgate/server/catalog"
)

// Limits of webhook fields (DESIGN.md §3, issue 2).
const (
	maxNameLen       = 255
	maxURLLen        = 2048
	minTimeout       = 1
	maxTimeout       = 30
	maxCustomHeaders = 20
	maxHeaderValue   = 4096
	maxGraceSeconds  = 604800
	maxOldSecrets    = 10
)

// reservedHeaders are set by eventgate on every request; custom headers cannot replace them.
var reservedHeaders = []string{
	"content-type", "user-agent", "webhook-id", "webhook-timestamp", "webhook-signature",
	"host", "content-length", "transfer-encoding", "connection", "te", "trailer", "upgrade",
	"keep-alive", "proxy-connection", "proxy-authorization",
}

func validateName(field, name string) error {
	if n := len([]rune(name)); n < 1 || n > maxNameLen {
		return apperr.BadInput(field, "must be 1 to %d characters", maxNameLen)
	}
	return nil
}

func validateEventTypes(field string, types []string) error {
	if len(types) == 0 {
		return apperr.BadInput(field, "must name at least one event type")
	}
	for i, t := range types {
		if _, ok := catalog.Lookup(t); !ok {
			return apperr.BadInput(fmt.Sprintf("%s[%d]", field, i), "unknown event type %q", t)
		}
		if slices.Index(types, t) != i {
			return apperr.BadInput(fmt.Sprintf("%s[%d]", field, i), "duplicate event type %q", t)
		}
	}
	return nil
}

func validateTimeout(field string, seconds int) error {
	if seconds < minTimeout || seconds > maxTimeout {
		return apperr.BadInput(field, "must be between %d and %d seconds", minTimeout, maxTimeout)
	}
	return nil
}

func validateRateLimit(field string, perSecond *int) error {
	if perSecond != nil && *perSecond < 1 {
		return apperr.BadInput(field, "must be at least 1 (or null for unlimited)")
	}
	return nil
}

// parseCustomHeaders checks a customHeaders JSON value: an object of header name to string value,
// names valid and not eventgate's own. It returns the headers, or nil for JSON null.
func parseCustomHeaders(field string, raw json.RawMessage) (map[string]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var headers map[string]any
	if err := json.Unmarshal(raw, &headers); err != nil {
		return nil, apperr.BadInput(field, "must be an object of header names to string values")
	}
	if len(headers) > maxCustomHeaders {
		return nil, apperr.BadInput(field, "at most %d headers", maxCustomHeaders)
	}
	out := make(map[string]string, len(headers))
	for name, v := range headers {
		value, ok := v.(string)
		if !ok {
			return nil, apperr.BadInput(field+"."+name, "value must be a string")
		}
		if !validHeaderName(name) {
			return nil, apperr.BadInput(field+"."+name, "is not a valid header name")
		}
		lower := strings.ToLower(name)
		if slices.Contains(reservedHeaders, lower) || strings.HasPrefix(lower, "x-webhook-") {
			return nil, apperr.BadInput(field+"."+name, "is set by eventgate and cannot be replaced")
		}
		if len(value) > maxHeaderValue || !validHeaderValue(value) {
			return nil, apperr.BadInput(field+"."+name, "value must be at most %d characters without line breaks or other control characters", maxHeaderValue)
		}
		out[http.CanonicalHeaderKey(name)] = value
	}
	return out, nil
}

// validHeaderValue accepts RFC 9110 field-value characters: visible ones, spaces, tabs and
// obs-text (bytes from 0x80), no other control character. Requests carry the value as it is.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validHeaderName accepts RFC 9110 token characters.
func validHeaderName(name string) bool {
	if name == "" || len(name) > 256 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ValidatePage checks limit and offset of a page request and applies the default limit.
func ValidatePage(limit, offset *int) (int, int, error) {
	l, o := 50, 0
	if limit != nil {
		l = *limit
	}
	if offset != nil {
		o = *offset
	}
	if l < 1 || l > 200 {
		return 0, 0, apperr.BadInput("limit", "must be between 1 and 200")
	}
	if o < 0 {
		return 0, 0, apperr.BadInput("offset", "must not be negative")
	}
	return l, o, nil
}
