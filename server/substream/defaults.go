package substream

import "time"

// Defaults shared by the streaming transports (DESIGN.md §5), defined once so WebSocket and SSE
// cannot drift apart.
const (
	DefaultQueueSize         = 256
	DefaultWriteTimeout      = 10 * time.Second
	DefaultKeepAliveInterval = 15 * time.Second
	DefaultRecheckInterval   = 2 * time.Second
	DefaultReadLimit         = 1 << 20
)

// Or returns v, or def when v is zero or negative: how the transports fill unset settings.
func Or[T ~int | ~int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}
