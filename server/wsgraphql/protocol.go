package wsgraphql

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventgate/eventgate/server/substream"
)

// Message types of both protocols.
const (
	typeConnectionInit      = "connection_init"
	typeConnectionAck       = "connection_ack"
	typePing                = "ping"
	typePong                = "pong"
	typeSubscribe           = "subscribe"
	typeNext                = "next"
	typeError               = "error"
	typeComplete            = "complete"
	typeConnectionError     = "connection_error"     // legacy
	typeKeepAlive           = "ka"                   // legacy
	typeStart               = "start"                // legacy
	typeData                = "data"                 // legacy
	typeStop                = "stop"                 // legacy
	typeConnectionTerminate = "connection_terminate" // legacy
)

var (
	msgPing      = []byte(`{"type":"ping"}`)
	msgPong      = []byte(`{"type":"pong"}`)
	msgAck       = []byte(`{"type":"connection_ack"}`)
	msgKeepAlive = []byte(`{"type":"ka"}`)
)

// inMessage is a client message of either protocol, before validation.
type inMessage struct {
	ID      *string         `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// operationPayload is the payload of subscribe (and legacy start).
type operationPayload struct {
	Query         *string        `json:"query"`
	OperationName *string        `json:"operationName"`
	Variables     map[string]any `json:"variables"`
	Extensions    map[string]any `json:"extensions"`
}

var errMalformed = errors.New("malformed message")

func parseMessage(data []byte) (inMessage, error) {
	var m inMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("decode message: %w", err)
	}
	if m.Type == "" {
		return m, errMalformed
	}
	return m, nil
}

// id returns the message's id, which must be a non-empty string.
func (m inMessage) id() (string, error) {
	if m.ID == nil || *m.ID == "" {
		return "", errMalformed
	}
	return *m.ID, nil
}

// objectPayload decodes a payload that must be a JSON object, null or absent (nil map).
func (m inMessage) objectPayload() (map[string]any, error) {
	if isNull(m.Payload) {
		return nil, nil
	}
	if m.Payload[0] != '{' {
		return nil, errMalformed
	}
	var p map[string]any
	if err := decodeJSON(m.Payload, &p); err != nil {
		return nil, fmt.Errorf("decode payload: %w", err)
	}
	return p, nil
}

// operationPayload decodes a subscribe/start payload: an object with a string query.
func (m inMessage) operationPayload() (*graphql.RawParams, error) {
	if isNull(m.Payload) || m.Payload[0] != '{' {
		return nil, errMalformed
	}
	var p operationPayload
	if err := decodeJSON(m.Payload, &p); err != nil {
		return nil, fmt.Errorf("decode payload: %w", err)
	}
	if p.Query == nil {
		return nil, errMalformed
	}
	params := &graphql.RawParams{Query: *p.Query, Variables: p.Variables, Extensions: p.Extensions}
	if p.OperationName != nil {
		params.OperationName = *p.OperationName
	}
	return params, nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// decodeJSON decodes numbers as json.Number, as gqlgen's transports do, so that Int64
// variables keep every digit.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

// handleTransportWS handles one graphql-transport-ws message.
func (c *conn) handleTransportWS(data []byte) {
	m, err := parseMessage(data)
	if err != nil {
		c.closeWith(CloseBadRequest, "invalid message received")
		return
	}
	switch m.Type {
	case typeConnectionInit:
		c.connectionInit(m)
	case typePing:
		// The ping's payload, if any, is echoed, as graphql-ws does.
		if p, err := m.objectPayload(); err != nil {
			c.closeWith(CloseBadRequest, "invalid message received")
		} else if p == nil {
			c.sendControl(msgPong)
		} else {
			c.sendControl(encodeMessage(typePong, nil, m.Payload))
		}
	case typePong:
		if _, err := m.objectPayload(); err != nil {
			c.closeWith(CloseBadRequest, "invalid message received")
		}
	case typeSubscribe:
		id, err := m.id()
		if err != nil {
			c.closeWith(CloseBadRequest, "invalid message received")
			return
		}
		params, err := m.operationPayload()
		if err != nil {
			c.closeWith(CloseBadRequest, "invalid message received")
			return
		}
		c.subscribe(id, params, false)
	case typeComplete:
		id, err := m.id()
		if err != nil {
			c.closeWith(CloseBadRequest, "invalid message received")
			return
		}
		// The client stopped listening: nothing more is sent for this id, not even complete.
		c.stopOperation(id, nil)
	default:
		c.closeWith(CloseBadRequest, "invalid message received")
	}
}

// handleLegacy handles one subscriptions-transport-ws message.
func (c *conn) handleLegacy(data []byte) {
	m, err := parseMessage(data)
	if err != nil {
		c.legacyFatal(CloseBadRequest, "invalid message received")
		return
	}
	switch m.Type {
	case typeConnectionInit:
		c.connectionInit(m)
	case typeStart:
		id, err := m.id()
		if err != nil {
			c.legacyFatal(CloseBadRequest, "invalid message received")
			return
		}
		params, err := m.operationPayload()
		if err != nil {
			c.legacyFatal(CloseBadRequest, "invalid message received")
			return
		}
		c.subscribe(id, params, true)
	case typeStop:
		id, err := m.id()
		if err != nil {
			c.legacyFatal(CloseBadRequest, "invalid message received")
			return
		}
		// subscriptions-transport-ws servers confirm a stop with complete.
		c.stopOperation(id, encodeMessage(typeComplete, &id, nil))
	case typeConnectionTerminate:
		c.closeWith(1000, "terminated")
	default:
		c.legacyFatal(CloseBadRequest, "invalid message received")
	}
}

// legacyFatal reports a connection error the legacy way (connection_error) and closes.
func (c *conn) legacyFatal(code int, text string) {
	payload, _ := json.Marshal(map[string]string{"message": text})
	c.sendControl(encodeMessage(typeConnectionError, nil, payload))
	c.closeWith(code, text)
}

// connectionInit authenticates the connection.
func (c *conn) connectionInit(m inMessage) {
	c.mu.Lock()
	again := c.initReceived
	c.initReceived = true
	c.mu.Unlock()
	if again {
		c.closeWith(CloseTooManyInitialise, "too many initialisation requests")
		return
	}
	payload, err := m.objectPayload()
	if err != nil {
		c.closeWith(CloseBadRequest, "invalid message received")
		return
	}
	ctx := c.ctx
	if auth := c.t.cfg.Authenticate; auth != nil {
		ctx, err = auth(c.ctx, c.header, payload)
		if err != nil {
			// The reason stays generic: why a token failed is for the logs, not the peer.
			c.logger().Info("websocket connection_init rejected", "err", err)
			if c.legacy {
				c.legacyFatal(CloseForbidden, "forbidden")
			} else {
				c.closeWith(CloseForbidden, "forbidden")
			}
			return
		}
	}
	if ctx == nil {
		ctx = c.ctx
	}
	c.mu.Lock()
	c.acked, c.authCtx = true, ctx
	c.mu.Unlock()
	// The upgrade's headers were for Authenticate only: a connection does not keep them for
	// its lifetime, and its operations see none.
	c.header = nil
	c.sendControl(msgAck)
	if c.legacy {
		c.sendControl(msgKeepAlive)
	}
}

// subscribe starts an operation.
func (c *conn) subscribe(id string, params *graphql.RawParams, legacy bool) {
	start := graphql.Now()
	c.mu.Lock()
	acked, base, existing := c.acked, c.authCtx, c.ops[id]
	c.mu.Unlock()
	if !acked {
		if legacy {
			c.legacyFatal(CloseUnauthorized, "unauthorized")
		} else {
			c.closeWith(CloseUnauthorized, "unauthorized")
		}
		return
	}
	if existing != nil {
		if !legacy {
			c.closeWith(CloseSubscriberExists, fmt.Sprintf("subscriber for %s already exists", id))
			return
		}
		// subscriptions-transport-ws replaces an operation started again with the same id.
		c.stopOperation(id, nil)
	}

	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	ctx, cancel := context.WithCancel(graphql.StartOperationTrace(base))
	op := &operation{id: id, cancel: cancel}
	enc := newEncoder(id, legacy)
	op.q = substream.NewQueue(c.t.cfg.QueueSize, &c.t.stats, func() { c.schedule(op) })
	c.mu.Lock()
	c.ops[id] = op
	c.mu.Unlock()

	rc, errs := c.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := c.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		op.q.Finish(enc.Error(resp.Errors))
		return
	}
	// The operation counts as running until Start reports it ended, which for a subscription
	// is long after this goroutine returned: it then runs on its resolver's goroutine.
	c.pumps.Add(1)
	c.t.ops.Add(1)
	ended := func() {
		cancel()
		c.t.ops.Add(-1)
		c.pumps.Done()
	}
	go substream.Start(ctx, cancel, c.exec, rc, op.q, enc, c.t.render, c.t.log, ended)
}

// stopOperation ends an operation at the client's request: its resolver's context is
// cancelled, frames not yet written are dropped and only final (nil for nothing) is sent.
func (c *conn) stopOperation(id string, final []byte) {
	c.mu.Lock()
	op := c.ops[id]
	delete(c.ops, id)
	c.mu.Unlock()
	if op == nil {
		return
	}
	// Abort before cancelling: a resolver that ends on the cancellation makes the operation
	// finish with complete, which must find the stream already ended (a client that completed
	// gets nothing more for the id).
	op.q.Abort(final)
	op.cancel()
}

// encoder writes one operation's frames in its connection's protocol.
type encoder struct {
	id     string
	legacy bool
	// nextPrefix is `{"id":<id>,"type":"next","payload":` (type data for legacy), built once
	// per operation: a next frame is then this, the shared payload and `}`.
	nextPrefix []byte
}

func newEncoder(id string, legacy bool) *encoder {
	typ := typeNext
	if legacy {
		typ = typeData
	}
	m := encodeMessage(typ, &id, []byte{})
	return &encoder{id: id, legacy: legacy, nextPrefix: m[:len(m)-1]}
}

// Shared is the payload and the message's closing brace: the part of a next frame every
// subscriber of the operation shares.
func (e *encoder) Shared(payload []byte) []byte {
	b := make([]byte, 0, len(payload)+1)
	b = append(b, payload...)
	return append(b, '}')
}

// Next is the operation's prefix followed by shared, both shared, so nothing is copied.
func (e *encoder) Next(shared []byte) substream.Frame {
	return substream.Frame{Data: e.nextPrefix, Tail: shared}
}

func (e *encoder) Error(errs gqlerror.List) []byte {
	return encodeErrors(e.id, errs)
}

func (e *encoder) Complete() []byte {
	return encodeMessage(typeComplete, &e.id, nil)
}

// encodeErrors is the `error` message of both protocols: its payload is the errors array.
func encodeErrors(id string, errs gqlerror.List) []byte {
	payload, err := json.Marshal(errs)
	if err != nil {
		payload, _ = json.Marshal(gqlerror.List{substream.InternalError()})
	}
	return encodeMessage(typeError, &id, payload)
}

func gqlErrors(errs ...*gqlerror.Error) gqlerror.List { return errs }

// encodeMessage builds {"id":…,"type":…,"payload":…}; id and payload are optional.
func encodeMessage(typ string, id *string, payload []byte) []byte {
	b := make([]byte, 0, len(payload)+64)
	b = append(b, '{')
	if id != nil {
		quoted, _ := json.Marshal(*id)
		b = append(b, `"id":`...)
		b = append(b, quoted...)
		b = append(b, ',')
	}
	b = append(b, `"type":"`...)
	b = append(b, typ...)
	b = append(b, '"')
	if payload != nil {
		b = append(b, `,"payload":`...)
		b = append(b, payload...)
	}
	return append(b, '}')
}
