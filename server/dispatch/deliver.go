package dispatch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/ent/deliveryattempt"
	"github.com/eventgate/eventgate/ent/webhook"
	"github.com/eventgate/eventgate/server/netguard"
)

const (
	// maxResponseBody is how much of a response body an attempt keeps (DESIGN.md §3).
	maxResponseBody = 64 << 10
	// maxDrain is how much more of a body is read and thrown away so that the connection can
	// be reused; a longer body costs the connection instead.
	maxDrain = 256 << 10
	// redacted replaces secret header values in recorded attempts.
	redacted = "[redacted]"
)

// job is one claimed delivery on its way.
type job struct {
	d       *ent.Delivery
	event   *ent.Event
	lane    *lane
	target  *target
	attempt int // 1-based number of this attempt

	// claimedUntil is the lease as stored; the coordinator owns it (renewals change it) and
	// records the outcome only while the row still holds this value.
	claimedUntil time.Time
}

// resultKind says what the coordinator does with a finished job.
type resultKind int

const (
	kindAttempt resultKind = iota // a request was made: record it
	kindRelease                   // nothing was sent: clear the claim, the delivery stays due
	kindDrop                      // nothing was sent: leave the claim to expire (a back-off)
)

// result is what a job hands back to the coordinator.
type result struct {
	job  *job
	kind resultKind

	requestedAt   time.Time
	duration      time.Duration
	reqHeaders    json.RawMessage // the recorded request headers, encoded here rather than on the coordinator
	status        int             // 0 when no response came
	respHeaders   json.RawMessage // nil when no response came
	respBody      *string
	errCode       deliveryattempt.ErrorCode // "" on success
	errMsg        string
	retryAfter    time.Duration
	hasRetryAfter bool
}

// enqueue hands a job to its lane's workers, starting one if the lane has fewer than
// PerWebhookInFlight. A worker goes on with the lane's next job as soon as it has a result, so a
// request slot does not wait for another goroutine to be woken and scheduled (with a goroutine
// per job, a quarter of the slots stood idle in such hand-overs under load), and jobs go out in
// the order they were claimed.
func (d *Dispatcher) enqueue(j *job) {
	d.jobs.Add(1)
	l := j.lane
	l.mu.Lock()
	if l.head > 0 && 2*l.head >= len(l.queue) { // drop the taken front; the lane may never run dry
		n := copy(l.queue, l.queue[l.head:])
		clear(l.queue[n:])
		l.queue, l.head = l.queue[:n], 0
	}
	l.queue = append(l.queue, j)
	start := l.workers < d.cfg.PerWebhookInFlight
	if start {
		l.workers++
	}
	l.mu.Unlock()
	if start {
		go d.work(l)
	}
}

// work runs a lane's jobs one after another and returns when the lane has none left.
func (d *Dispatcher) work(l *lane) {
	for {
		l.mu.Lock()
		if l.head == len(l.queue) {
			l.queue, l.head = l.queue[:0], 0
			l.workers--
			l.mu.Unlock()
			return
		}
		j := l.queue[l.head]
		l.queue[l.head] = nil
		l.head++
		l.mu.Unlock()
		d.inbox.put(d.attempt(j))
		d.jobs.Done()
	}
}

// attempt waits for the webhook's rate limit and a global slot, then sends. A job that has not
// sent when the dispatcher stops gives its delivery back.
func (d *Dispatcher) attempt(j *job) result {
	release := result{job: j, kind: kindRelease}
	quit := d.quitCtx.Done()
	l := j.lane
	if err := l.pacer.wait(d.quitCtx, j.target.rate); err != nil {
		return release
	}
	select {
	case d.global <- struct{}{}:
	case <-quit:
		return release
	}
	defer func() { <-d.global }()
	if d.quitCtx.Err() != nil || l.disabled.Load() || l.target.Load() != j.target {
		return release
	}
	r := d.send(j)
	if r.status == http.StatusGone {
		// The webhook is disabled when this is recorded; its other requests wait from now.
		l.gone.Store(true)
		l.disabled.Store(true)
	}
	return r
}

// send makes the HTTP request of one attempt (DESIGN.md §6) and describes what happened.
func (d *Dispatcher) send(j *job) result {
	t := j.target
	body := requestBody(t.format, j.event)
	start := time.Now()
	ts := start.Unix()
	signer := t.signerAt(start)

	rec := make([]headerPair, 0, 10+len(t.headers)) // as recorded: secrets redacted
	sent := make([]headerPair, 0, cap(rec))
	put := func(name, value string, secret bool) {
		sent = append(sent, headerPair{name, value}) // as spelled in DESIGN.md §6
		if secret {
			value = redacted
		}
		rec = append(rec, headerPair{name, value})
	}
	// Custom headers go in first; reserved names were removed when the target was built.
	for _, c := range t.headers {
		put(c.name, c.value, true)
	}
	put("Content-Type", "application/json", false)
	put("User-Agent", d.cfg.UserAgent, false)
	put("webhook-id", j.event.EventID, false)
	put("webhook-timestamp", strconv.FormatInt(ts, 10), false)
	put("webhook-signature", signer.Sign(j.event.EventID, ts, body), true)
	put("X-Webhook-Event", j.event.Type, false)
	put("X-Webhook-Id", strconv.Itoa(j.d.WebhookID), false)
	put("X-Webhook-Delivery", strconv.Itoa(j.d.ID), false)
	put("X-Webhook-Attempt", strconv.Itoa(j.attempt), false)
	put("X-Webhook-Signature", signer.SignLegacy(body), true)

	r := result{job: j, kind: kindAttempt, requestedAt: start.UTC(), reqHeaders: encodeHeaders(rec)}
	if t.endpoint == nil {
		r.duration = time.Since(start)
		r.errCode, r.errMsg = deliveryattempt.ErrorCodeCONNECTION, "invalid webhook url"
		return r
	}
	deadline := start.Add(t.timeout)
	x, err := d.wire.post(d.jobCtx, t.endpoint, sent, body, deadline)
	if err != nil {
		if d.jobCtx.Err() != nil {
			return result{job: j, kind: kindRelease} // aborted by Stop: not an attempt
		}
		r.duration = time.Since(start)
		r.errCode, r.errMsg = classify(deadline, err, t.timeout)
		return r
	}
	resp := x.resp
	text := ""
	if resp.ContentLength != 0 { // most receivers answer with no body at all
		text = readBody(resp.Body)
	}
	_, drainErr := io.CopyN(io.Discard, resp.Body, maxDrain)
	r.duration = time.Since(start)
	d.wire.finish(x, drainErr == io.EOF)
	r.status = resp.StatusCode
	r.respHeaders = encodeHeaders(firstValues(resp.Header))
	r.respBody = &text
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
	case code >= 300 && code < 400:
		r.errCode = deliveryattempt.ErrorCodeREDIRECT
		r.errMsg = fmt.Sprintf("receiver answered %d %s; redirects are not followed", code, http.StatusText(code))
	default:
		r.errCode = deliveryattempt.ErrorCodeHTTP_STATUS
		r.errMsg = fmt.Sprintf("receiver answered %d %s", code, http.StatusText(code))
	}
	r.retryAfter, r.hasRetryAfter = retryAfter(resp.StatusCode, resp.Header, time.Now(), d.cfg.MaxRetryAfter)
	return r
}

// requestBody is the body of every attempt: STANDARD wraps the payload as
// {"type","timestamp","data"}; LEGACY is the bare payload. The payload bytes are the stored
// ones, so unknown keys and the producer's number spellings go through unchanged.
func requestBody(format webhook.PayloadFormat, ev *ent.Event) []byte {
	payload := ev.Payload
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("null")
	}
	if format == webhook.PayloadFormatLEGACY {
		return payload
	}
	typ, _ := json.Marshal(ev.Type) // marshalling a string cannot fail
	b := make([]byte, 0, len(payload)+len(typ)+64)
	b = append(b, `{"type":`...)
	b = append(b, typ...)
	b = append(b, `,"timestamp":"`...)
	b = ev.OccurredAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","data":`...)
	b = append(b, payload...)
	return append(b, '}')
}

// classify maps a request error to its DeliveryErrorCode and a message for admins. The errors
// come from the dial, TLS and the connection, none of which names the URL (which may carry a
// token).
func classify(deadline time.Time, err error, timeout time.Duration) (deliveryattempt.ErrorCode, string) {
	var (
		blocked *netguard.BlockedError
		dnsErr  *net.DNSError
	)
	switch {
	case errors.As(err, &blocked):
		return deliveryattempt.ErrorCodeBLOCKED_TARGET, blocked.Error()
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err) || !time.Now().Before(deadline):
		return deliveryattempt.ErrorCodeTIMEOUT, fmt.Sprintf("no complete answer within %s", timeout)
	case errors.As(err, &dnsErr):
		return deliveryattempt.ErrorCodeDNS, dnsErr.Error()
	case isTLS(err):
		return deliveryattempt.ErrorCodeTLS, err.Error()
	default:
		return deliveryattempt.ErrorCodeCONNECTION, err.Error()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isTLS(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		alert    tls.AlertError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	if errors.As(err, &verify) || errors.As(err, &record) || errors.As(err, &alert) ||
		errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ")
}

// readBody returns the first maxResponseBody bytes of a response body as text: cut at a rune
// boundary, and replaced by a note when it is not UTF-8 text (the column is text, and
// PostgreSQL's text refuses NUL bytes).
func readBody(r io.Reader) string {
	buf, _ := io.ReadAll(io.LimitReader(r, maxResponseBody+1))
	if len(buf) > maxResponseBody {
		buf = trimPartialRune(buf[:maxResponseBody])
	}
	if !utf8.Valid(buf) || bytes.IndexByte(buf, 0) >= 0 {
		return fmt.Sprintf("[binary response body omitted, %d bytes read]", len(buf))
	}
	return string(buf)
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of b.
func trimPartialRune(b []byte) []byte {
	for k := 1; k <= utf8.UTFMax && k <= len(b); k++ {
		if utf8.RuneStart(b[len(b)-k]) {
			if !utf8.FullRune(b[len(b)-k:]) {
				return b[:len(b)-k]
			}
			return b
		}
	}
	return b
}

// firstValues keeps the first value of each response header.
func firstValues(h http.Header) []headerPair {
	out := make([]headerPair, 0, len(h))
	for k, v := range h {
		if len(v) > 0 {
			out = append(out, headerPair{k, v[0]})
		}
	}
	return out
}
