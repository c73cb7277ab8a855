package dispatch

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
)

// headerPair is one recorded header. The names of a request's or response's headers are
// distinct.
type headerPair struct{ name, value string }

// encodeHeaders is the JSON object of recorded headers, as the attempt columns hold it: byte for
// byte what encoding/json writes for the same map (keys sorted, HTML-safe escapes), without its
// reflection, which cost more than the rest of an attempt's recording. It sorts hs.
func encodeHeaders(hs []headerPair) json.RawMessage {
	slices.SortFunc(hs, func(a, b headerPair) int { return strings.Compare(a.name, b.name) })
	size := 2
	for _, p := range hs {
		size += len(p.name) + len(p.value) + 6
	}
	b := make([]byte, 0, size)
	b = append(b, '{')
	for i, p := range hs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, p.name)
		b = append(b, ':')
		b = appendJSONString(b, p.value)
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way encoding/json does: ", \ and control
// characters escaped (\b, \f, \n, \r, \t short), <, > and & as \u escapes, invalid UTF-8 as U+FFFD, and
// U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
