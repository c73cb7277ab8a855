package httpgraphql

import (
	"mime"
	"strconv"
	"strings"
)

// Media types of GraphQL responses (GraphQL over HTTP §"Accept").
const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
	mediaEventStream     = "text/event-stream"
)

// mediaRange is one element of an Accept header.
type mediaRange struct {
	typ, sub string
	q        float64
}

// parseAccept parses Accept header values into media ranges, in order. Malformed elements
// are skipped: one odd entry should not make the whole request unacceptable.
func parseAccept(values []string) []mediaRange {
	var ranges []mediaRange
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			mt, params, err := mime.ParseMediaType(part)
			if err != nil {
				continue
			}
			if mt == "*" { // a bare "*" is a common spelling of "*/*"
				mt = "*/*"
			}
			typ, sub, ok := strings.Cut(mt, "/")
			if !ok {
				continue
			}
			q := 1.0
			if s, ok := params["q"]; ok {
				q, err = strconv.ParseFloat(s, 64)
				if err != nil || q < 0 || q > 1 {
					continue
				}
			}
			ranges = append(ranges, mediaRange{typ: typ, sub: sub, q: q})
		}
	}
	return ranges
}

// negotiate picks the response media type for the Accept header values. The most specific
// range that matches a media type gives its quality; the higher quality wins, then the more
// specific match, then the range listed first; a complete tie (as under */* or application/*)
// goes to application/json, which every client understands. ok is false when the client
// accepts neither type. No Accept at all means application/json.
func negotiate(values []string) (media string, ok bool) {
	ranges := parseAccept(values)
	if len(ranges) == 0 {
		return mediaJSON, true
	}
	var bestQ float64
	bestSpec, bestPos := -1, 0
	for _, cand := range []string{mediaJSON, mediaGraphQLResponse} {
		q, spec, pos, found := match(cand, ranges)
		if !found || q <= 0 {
			continue
		}
		if media == "" || q > bestQ || q == bestQ && (spec > bestSpec || spec == bestSpec && pos < bestPos) {
			media, bestQ, bestSpec, bestPos = cand, q, spec, pos
		}
	}
	return media, media != ""
}

// match finds the most specific range that covers media: specificity 2 for an exact match,
// 1 for type/*, 0 for */*. Among equally specific ranges the first counts.
func match(media string, ranges []mediaRange) (q float64, spec, pos int, found bool) {
	typ, sub, _ := strings.Cut(media, "/")
	spec = -1
	for i, r := range ranges {
		s := -1
		switch {
		case r.typ == typ && r.sub == sub:
			s = 2
		case r.typ == typ && r.sub == "*":
			s = 1
		case r.typ == "*" && r.sub == "*":
			s = 0
		}
		if s > spec {
			q, spec, pos, found = r.q, s, i, true
		}
	}
	return q, spec, pos, found
}

// PrefersEventStream reports whether a request with these Accept values is to be answered
// as a Server-Sent Events stream (the SSE transport) rather than a JSON response (this one).
// text/event-stream must be named explicitly (*/* is not a request for a stream) and must rank
// above the best JSON media type by the rule of negotiate: quality, then specificity, then
// the range listed first. Merely accepting a stream is not asking for one: urql sends
// "application/graphql-response+json, application/graphql+json, application/json,
// text/event-stream, multipart/mixed" with every query and mutation, wants JSON back, and
// when it gets a stream instead it aborts the response body after the first result (an
// unhandled AbortError in Node). The SSE transport asks the same question, so both
// transports always agree on who serves a request.
func PrefersEventStream(values []string) bool {
	ranges := parseAccept(values)
	sseQ, ssePos := 0.0, -1
	for i, r := range ranges {
		if r.typ+"/"+r.sub == mediaEventStream {
			sseQ, ssePos = r.q, i
			break
		}
	}
	if ssePos < 0 || sseQ <= 0 {
		return false
	}
	media, ok := negotiate(values)
	if !ok {
		return true
	}
	q, spec, pos, _ := match(media, ranges)
	// text/event-stream always matched exactly (specificity 2).
	return sseQ > q || sseQ == q && (spec < 2 || ssePos < pos)
}
