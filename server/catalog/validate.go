package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/eventgate/eventgate/server/apperr"
)

// maxDepth is the deepest nesting Validate accepts, the same limit encoding/json applies, so that
// everything Validate accepts can be decoded again.
const maxDepth = 10000

// jsonKind is the JSON type of a value found in a payload.
type jsonKind uint8

const (
	jsonNull jsonKind = iota + 1
	jsonBool
	jsonNumber
	jsonString
	jsonObject
	jsonArray
)

// article names the JSON type in error messages ("got a string").
func (k jsonKind) article() string {
	switch k {
	case jsonNull:
		return "null"
	case jsonBool:
		return "a boolean"
	case jsonNumber:
		return "a number"
	case jsonString:
		return "a string"
	case jsonObject:
		return "an object"
	case jsonArray:
		return "an array"
	}
	return "nothing"
}

// problem is what is wrong with one field. Validate records problems as these small values and
// builds the message only for the one it reports, so that a valid payload costs no allocation.
type problem uint8

const (
	problemNone problem = iota
	problemNull
	problemType
	problemFraction
	problemRange
	problemEnum
	problemDateTime
)

// fieldState is what Validate saw of one property.
type fieldState struct {
	seen    bool
	problem problem
	got     jsonKind
}

// Validate checks payload against the schema of eventType. The payload must be a JSON object in
// UTF-8; its fields are checked in schema order and the first problem is returned as an
// *apperr.Error with code BAD_USER_INPUT whose Field names it ("payload.amount_kopeks"), or
// "type" for a type the catalog does not have, or "payload" when the payload as a whole is wrong.
// Keys the schema does not list are allowed. Validate does not change the payload.
func Validate(eventType string, payload []byte) error {
	s := find(eventType)
	if s == nil {
		return apperr.BadInput("type", "unknown event type %q", eventType)
	}
	return s.validate(payload)
}

func (s *schema) validate(data []byte) error {
	if len(s.properties) > maxProperties {
		panic("catalog: " + s.name + " has more properties than Validate tracks")
	}
	// Storage and GraphQL hand the payload on as it is, and JSON text must be UTF-8.
	if !utf8.Valid(data) {
		return apperr.BadInput("payload", "is not valid UTF-8")
	}
	var states [maxProperties]fieldState
	sc := scanner{data: data}
	sc.skipSpace()
	if sc.pos >= len(data) || data[sc.pos] != '{' {
		return notObject(data)
	}
	sc.pos++
	sc.skipSpace()
	if sc.peek() == '}' {
		sc.pos++
	} else {
		for {
			if sc.peek() != '"' {
				return syntaxError(data)
			}
			keyStart := sc.pos + 1
			escaped, ok := sc.skipString()
			if !ok {
				return syntaxError(data)
			}
			key := data[keyStart : sc.pos-1]
			sc.skipSpace()
			if sc.peek() != ':' {
				return syntaxError(data)
			}
			sc.pos++
			sc.skipSpace()
			valueStart := sc.pos
			kind, ok := sc.skipValue(1)
			if !ok {
				return syntaxError(data)
			}
			if i := s.propertyIndex(key, escaped); i >= 0 {
				st := &states[i]
				st.seen = true
				// With a repeated key every occurrence must be valid, whichever one a reader keeps.
				if st.problem == problemNone {
					st.problem = s.properties[i].check(kind, data[valueStart:sc.pos])
					st.got = kind
				}
			}
			sc.skipSpace()
			c := sc.peek()
			sc.pos++
			if c == '}' {
				break
			}
			if c != ',' {
				return syntaxError(data)
			}
			sc.skipSpace()
		}
	}
	sc.skipSpace()
	if sc.pos != len(data) {
		return syntaxError(data)
	}
	for i := range s.properties {
		p := &s.properties[i]
		st := &states[i]
		switch {
		case !st.seen && p.required:
			return apperr.BadInput("payload."+p.name, "is required")
		case st.problem != problemNone:
			return p.describe(st.problem, st.got)
		}
	}
	return nil
}

// propertyIndex returns the index of the property called key (raw JSON string content), or -1.
func (s *schema) propertyIndex(key []byte, escaped bool) int {
	if escaped {
		var buf [64]byte
		key = appendUnescaped(buf[:0], key)
	}
	for i := range s.properties {
		if string(key) == s.properties[i].name {
			return i
		}
	}
	return -1
}

// check returns what is wrong with value (raw JSON of the given kind) for this property.
func (p *property) check(got jsonKind, value []byte) problem {
	if got == jsonNull {
		if p.required {
			return problemNull
		}
		return problemNone
	}
	switch p.kind {
	case kindInteger:
		if got != jsonNumber {
			return problemType
		}
		_, pr := parseInt(value)
		return pr
	case kindNumber:
		if got != jsonNumber {
			return problemType
		}
		// The same conversion encoding/json makes into float64, so decoding later cannot fail.
		if _, err := strconv.ParseFloat(string(value), 64); err != nil {
			return problemRange
		}
		return problemNone
	case kindBoolean:
		if got != jsonBool {
			return problemType
		}
		return problemNone
	case kindString:
		if got != jsonString {
			return problemType
		}
		if p.format == formatDateTime {
			// time.Time's own JSON decoding, which is what readers of the payload use.
			var t time.Time
			if t.UnmarshalJSON(value) != nil {
				return problemDateTime
			}
		}
		if p.enum != nil && !p.inEnum(value) {
			return problemEnum
		}
		return problemNone
	}
	panic("catalog: unknown kind")
}

// inEnum reports whether the JSON string value (with its quotes) is one of the enum's values.
func (p *property) inEnum(value []byte) bool {
	content := value[1 : len(value)-1]
	var buf [32]byte
	s := appendUnescaped(buf[:0], content)
	for _, v := range p.enum {
		if string(s) == v {
			return true
		}
	}
	return false
}

// describe turns a recorded problem into the error shown to the producer.
func (p *property) describe(pr problem, got jsonKind) error {
	field := "payload." + p.name
	expected := p.kind.expected()
	if !p.required {
		expected += " or null"
	}
	switch pr {
	case problemNull:
		return apperr.BadInput(field, "must not be null")
	case problemType:
		return apperr.BadInput(field, "expected %s, got %s", expected, got.article())
	case problemFraction:
		return apperr.BadInput(field, "expected %s, got a fraction", expected)
	case problemRange:
		if p.kind == kindInteger {
			return apperr.BadInput(field, "expected %s, got a number out of its range", expected)
		}
		return apperr.BadInput(field, "expected %s, got one out of the float64 range", expected)
	case problemEnum:
		return apperr.BadInput(field, "must be one of %s", strings.Join(p.enum, ", "))
	case problemDateTime:
		return apperr.BadInput(field, "must be an RFC 3339 date-time, like 2026-01-02T15:04:05Z")
	}
	panic("catalog: unknown problem")
}

// notObject explains why a payload that does not start with '{' is refused.
func notObject(data []byte) error {
	sc := scanner{data: data}
	sc.skipSpace()
	got, ok := sc.skipValue(0)
	sc.skipSpace()
	if !ok || sc.pos != len(data) {
		return syntaxError(data)
	}
	return apperr.BadInput("payload", "must be a JSON object, got %s", got.article())
}

// syntaxError explains why data is not JSON. It runs only on the error path, so it can afford to
// ask encoding/json for its wording.
func syntaxError(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return apperr.BadInput("payload", "must be a JSON object, got nothing")
	}
	var raw json.RawMessage
	err := json.Unmarshal(data, &raw)
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return apperr.BadInput("payload", "is not valid JSON: %s (at byte %d)", se.Error(), se.Offset)
	}
	// encoding/json checks the same grammar and depth, so this is not expected; say what we know.
	return apperr.BadInput("payload", "is not valid JSON")
}

// scanner walks JSON text without building values. It checks the full grammar of RFC 8259 but not
// UTF-8, which Validate checks once for the whole payload.
type scanner struct {
	data []byte
	pos  int
}

// peek returns the current byte, or 0 at the end.
func (sc *scanner) peek() byte {
	if sc.pos < len(sc.data) {
		return sc.data[sc.pos]
	}
	return 0
}

func (sc *scanner) skipSpace() {
	for sc.pos < len(sc.data) {
		switch sc.data[sc.pos] {
		case ' ', '\t', '\n', '\r':
			sc.pos++
		default:
			return
		}
	}
}

// skipValue moves past one value at depth (1 for a member of the payload object) and returns its
// JSON type.
func (sc *scanner) skipValue(depth int) (jsonKind, bool) {
	switch c := sc.peek(); {
	case c == '"':
		_, ok := sc.skipString()
		return jsonString, ok
	case c == '-' || c >= '0' && c <= '9':
		end := scanNumber(sc.data, sc.pos)
		if end < 0 {
			return jsonNumber, false
		}
		sc.pos = end
		return jsonNumber, true
	case c == 't':
		return jsonBool, sc.skipLiteral("true")
	case c == 'f':
		return jsonBool, sc.skipLiteral("false")
	case c == 'n':
		return jsonNull, sc.skipLiteral("null")
	case c == '{':
		return jsonObject, sc.skipContainer(depth+1, '}')
	case c == '[':
		return jsonArray, sc.skipContainer(depth+1, ']')
	}
	return 0, false
}

func (sc *scanner) skipLiteral(lit string) bool {
	if len(sc.data)-sc.pos < len(lit) || string(sc.data[sc.pos:sc.pos+len(lit)]) != lit {
		return false
	}
	sc.pos += len(lit)
	return true
}

// skipContainer moves past an object (closer '}') or array (closer ']') starting at the current
// byte; depth is the nesting level of its members.
func (sc *scanner) skipContainer(depth int, closer byte) bool {
	if depth > maxDepth {
		return false
	}
	sc.pos++ // the opener
	sc.skipSpace()
	if sc.peek() == closer {
		sc.pos++
		return true
	}
	for {
		if closer == '}' {
			if sc.peek() != '"' {
				return false
			}
			if _, ok := sc.skipString(); !ok {
				return false
			}
			sc.skipSpace()
			if sc.peek() != ':' {
				return false
			}
			sc.pos++
			sc.skipSpace()
		}
		if _, ok := sc.skipValue(depth); !ok {
			return false
		}
		sc.skipSpace()
		c := sc.peek()
		sc.pos++
		if c == closer {
			return true
		}
		if c != ',' {
			return false
		}
		sc.skipSpace()
	}
}

// skipString moves past the string starting at the current '"' and reports whether it holds
// escapes.
func (sc *scanner) skipString() (escaped, ok bool) {
	data := sc.data
	i := sc.pos + 1
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			sc.pos = i + 1
			return escaped, true
		case c < 0x20:
			return escaped, false
		case c == '\\':
			escaped = true
			if i+1 >= len(data) {
				return escaped, false
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) || !isHex4(data[i+2:i+6]) {
					return escaped, false
				}
				i += 6
			default:
				return escaped, false
			}
		default:
			i++
		}
	}
	return escaped, false
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// appendUnescaped appends the decoded content of a JSON string (without its quotes, already
// checked by skipString) to dst, decoding escapes the way encoding/json does: a surrogate that is
// not part of a pair becomes U+FFFD.
func appendUnescaped(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2 = utf16.DecodeRune(r, hex4(s[i+2:]))
				}
				if r2 != utf8.RuneError {
					r = r2
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}
