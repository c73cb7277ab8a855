// Package scalar implements the custom GraphQL scalars of the contract: Time (RFC 3339 in UTC),
// JSON (raw JSON passed through without re-encoding) and Cursor (an opaque log position).
package scalar

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/eventgate/eventgate/server/apperr"
)

// MarshalTime writes t as RFC 3339 with nanoseconds trimmed, always in UTC.
func MarshalTime(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = w.Write(AppendTime(make([]byte, 0, len(`"2006-01-02T15:04:05.999999999Z"`)), t))
	})
}

// AppendTime appends t to b as MarshalTime writes it. RFC 3339 has nothing to escape in a
// JSON string.
func AppendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// UnmarshalTime reads an RFC 3339 string.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, apperr.BadInput("", "time must be an RFC 3339 string")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, apperr.BadInput("", "time must be RFC 3339, like 2026-01-02T15:04:05Z")
	}
	return t.UTC(), nil
}

// MarshalJSON writes raw JSON without re-encoding it, compacted, as responses are; a nil value
// is written as null. Stored values (payloads, headers) are compact already and are copied as
// they are: the HTTP transport writes the executor's output without another pass over it.
func MarshalJSON(v json.RawMessage) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		if len(v) == 0 {
			_, _ = io.WriteString(w, "null")
			return
		}
		if bytes.ContainsAny(v, " \t\r\n") {
			var compact bytes.Buffer
			// Values are validated when they are stored; should one not be JSON after all,
			// it is written as it is rather than hidden.
			if json.Compact(&compact, v) == nil {
				v = compact.Bytes()
			}
		}
		_, _ = w.Write(v)
	})
}

// UnmarshalJSON accepts any JSON value (from variables or inline literals) and keeps its encoding.
func UnmarshalJSON(v any) (json.RawMessage, error) {
	if raw, ok := v.(json.RawMessage); ok {
		return raw, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, apperr.BadInput("", "not a JSON value: %v", err)
	}
	return b, nil
}

// Cursor is an opaque position in the event log.
type Cursor string

// ErrBadCursor is returned for a cursor that eventgate did not issue.
var ErrBadCursor = apperr.BadInput("", "malformed cursor")

// cursorVersion prefixes the encoded position so the format can change later.
const cursorVersion = 1

// CursorFor encodes a log position.
func CursorFor(seq int64) Cursor {
	var b [9]byte
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:], uint64(seq))
	return Cursor(base64.RawURLEncoding.EncodeToString(b[:]))
}

// Position decodes the log position of a cursor.
func (c Cursor) Position() (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(string(c))
	if err != nil || len(b) != 9 || b[0] != cursorVersion {
		return 0, ErrBadCursor
	}
	seq := binary.BigEndian.Uint64(b[1:])
	if seq > 1<<62 {
		return 0, ErrBadCursor
	}
	return int64(seq), nil
}

// MarshalGQL writes the cursor as a string.
func (c Cursor) MarshalGQL(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(string(c))) }

// UnmarshalGQL reads a cursor and checks that it decodes.
func (c *Cursor) UnmarshalGQL(v any) error {
	s, ok := v.(string)
	if !ok {
		return ErrBadCursor
	}
	if _, err := Cursor(s).Position(); err != nil {
		return err
	}
	*c = Cursor(s)
	return nil
}
