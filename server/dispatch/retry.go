package dispatch

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultSchedule returns the waits between attempts of DESIGN.md §6: ten attempts in all, the
// last about three days after the first.
func DefaultSchedule() []time.Duration {
	return []time.Duration{
		5 * time.Second,
		5 * time.Minute,
		30 * time.Minute,
		2 * time.Hour,
		5 * time.Hour,
		10 * time.Hour,
		14 * time.Hour,
		20 * time.Hour,
		24 * time.Hour,
	}
}

// NextDelay returns how long to wait after attempt number attempt (1-based) failed, and false
// when that attempt was the last one. The wait is schedule[attempt-1] moved by up to ±jitter of
// itself (jitter 0.2 = ±20 %), so that the retries of many deliveries that failed together do not
// hit a recovering receiver together. rnd returns a number in [0, 1); nil means math/rand/v2.
func NextDelay(schedule []time.Duration, attempt int, jitter float64, rnd func() float64) (time.Duration, bool) {
	if attempt < 1 || attempt > len(schedule) {
		return 0, false
	}
	base := schedule[attempt-1]
	if jitter <= 0 || base <= 0 {
		return max(base, 0), true
	}
	jitter = min(jitter, 1)
	if rnd == nil {
		rnd = rand.Float64
	}
	// factor is in [1-jitter, 1+jitter).
	factor := 1 + jitter*(2*rnd()-1)
	return time.Duration(float64(base) * factor), true
}

// retryAfter reads the Retry-After header of a 429 or 503 answer: delay-seconds or an HTTP
// date. It reports false when the status does not carry one or the value is unreadable.
// The wait is capped at limit and never negative.
func retryAfter(status int, h http.Header, now time.Time, limit time.Duration) (time.Duration, bool) {
	if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
		return 0, false
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	var wait time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(limit/time.Second) {
			return limit, true
		}
		wait = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		wait = at.Sub(now)
	} else {
		return 0, false
	}
	return min(max(wait, 0), limit), true
}
