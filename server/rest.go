package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/eventgate/eventgate/ent"
	"github.com/eventgate/eventgate/graph/scalar"
	"github.com/eventgate/eventgate/server/apperr"
	"github.com/eventgate/eventgate/server/auth"
	"github.com/eventgate/eventgate/server/events"
)

// maxRESTBody bounds a POST /v1/events body: a full batch of typical events fits easily.
const maxRESTBody = 16 << 20

type restError struct {
	Error restErrorBody `json:"error"`
}

type restErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// restEventIn is one event as producers post it.
type restEventIn struct {
	Type       string          `json:"type"`
	Payload    json.RawMessage `json:"payload"`
	ID         *string         `json:"id"`
	OccurredAt *time.Time      `json:"occurred_at"`
}

// restEventOut is a stored event as REST returns it.
type restEventOut struct {
	ID         string          `json:"id"`
	Cursor     string          `json:"cursor"`
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurred_at"`
	ReceivedAt time.Time       `json:"received_at"`
	Payload    json.RawMessage `json:"payload"`
}

// restPublish is POST /v1/events: one event object or an array of up to 500.
func (a *App) restPublish(w http.ResponseWriter, r *http.Request) {
	p, err := auth.Require(r.Context(), auth.ScopeEventsPublish)
	if err != nil {
		a.restFail(w, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRESTBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.restFail(w, &apperr.Error{Code: apperr.BadUserInput, Message: fmt.Sprintf("body exceeds %d bytes", maxRESTBody), HTTPStatus: http.StatusRequestEntityTooLarge})
			return
		}
		a.restFail(w, apperr.BadInput("body", "could not be read"))
		return
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	batch := len(trimmed) > 0 && trimmed[0] == '['
	var ins []restEventIn
	if batch {
		err = json.Unmarshal(body, &ins)
	} else {
		var one restEventIn
		err = json.Unmarshal(body, &one)
		ins = []restEventIn{one}
	}
	if err != nil {
		a.restFail(w, apperr.BadInput("body", "must be an event object or an array of them: %v", jsonProblem(err)))
		return
	}
	if len(ins) == 0 {
		a.restFail(w, apperr.BadInput("body", "the array is empty"))
		return
	}
	if len(ins) > events.MaxBatch {
		a.restFail(w, apperr.BadInput("body", "at most %d events per request", events.MaxBatch))
		return
	}
	inputs := make([]events.Input, len(ins))
	for i, in := range ins {
		if !p.CanSee(in.Type) {
			a.restFail(w, apperr.New(apperr.Forbidden, "this token may not publish %s events", in.Type))
			return
		}
		if len(in.Payload) == 0 {
			a.restFail(w, apperr.BadInput(restField(batch, i, "payload"), "is required"))
			return
		}
		inputs[i] = events.Input{Type: in.Type, Payload: in.Payload, ID: in.ID, OccurredAt: in.OccurredAt}
	}
	if err := a.events.Allow(p.TokenID, len(inputs)); err != nil {
		a.restFail(w, err)
		return
	}
	stored, created, err := a.events.Publish(r.Context(), inputs, func(i int) string { return restField(batch, i, "") })
	if err != nil {
		a.restFail(w, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	out := make([]restEventOut, len(stored))
	for i, e := range stored {
		out[i] = restEvent(e)
	}
	if batch {
		writeJSON(w, status, out)
	} else {
		writeJSON(w, status, out[0])
	}
}

func restEvent(e *ent.Event) restEventOut {
	return restEventOut{ID: e.EventID, Cursor: string(scalar.CursorFor(int64(e.ID))), Type: e.Type,
		OccurredAt: e.OccurredAt.UTC(), ReceivedAt: e.ReceivedAt.UTC(), Payload: e.Payload}
}

// restField names a field of the request body: "payload", or "[3].payload" in a batch.
func restField(batch bool, i int, name string) string {
	if !batch {
		return name
	}
	return fmt.Sprintf("[%d].", i) + name
}

func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Sprintf("%s has the wrong type", typeErr.Field)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Sprintf("invalid JSON at byte %d", syntaxErr.Offset)
	}
	return "invalid JSON"
}

func (a *App) restFail(w http.ResponseWriter, err error) {
	e, ok := apperr.As(err)
	if !ok {
		a.log.Error("rest publish", "err", err)
		writeJSON(w, http.StatusInternalServerError, restError{Error: restErrorBody{Code: apperr.Internal, Message: "internal server error"}})
		return
	}
	status := e.HTTPStatus
	if status == 0 {
		switch e.Code {
		case apperr.Unauthenticated:
			status = http.StatusUnauthorized
		case apperr.Forbidden:
			status = http.StatusForbidden
		case apperr.NotFound:
			status = http.StatusNotFound
		case apperr.RateLimited:
			status = http.StatusTooManyRequests
		default:
			status = http.StatusBadRequest
		}
	}
	if secs, ok := e.Extra["retryAfterSeconds"].(int); ok {
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg // the message names the field too, as GraphQL's do
	}
	writeJSON(w, status, restError{Error: restErrorBody{Code: e.Code, Message: msg, Field: e.Field}})
}
