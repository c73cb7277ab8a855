package substream

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventgate/eventgate/server/streamctl"
)

// Encoder turns an operation's responses into a transport's wire frames. Its methods are
// never called concurrently: from Run's goroutine, and Next also from the resolver's (see
// streamctl.Queue.SetDirect).
type Encoder interface {
	// Shared renders a response payload (see Payload) into the part of a next frame that
	// every subscriber of the operation can share: rendered once per item and kept in the
	// render cache, so each transport's cache holds its own encoder's renderings.
	Shared(payload []byte) []byte
	// Next returns the frame that continues the stream with shared (from Shared), without
	// copying it: Next is on the path of every frame of every subscriber.
	Next(shared []byte) Frame
	// Error encodes a terminal error: the operation ends with it and nothing follows.
	Error(errs gqlerror.List) []byte
	// Complete encodes the normal end of the stream; nil sends nothing.
	Complete() []byte
}

// Run executes one operation whose context was created by exec.CreateOperationContext and
// queues its responses on q until the stream ends, q overflows or ctx is cancelled. It blocks;
// transports call it on one goroutine per operation and cancel ctx when it returns.
//
// A subscription whose resolver reports through streamctl is driven by those reports, in order:
// each gives the frame its cursor and says whether it is replay; an item the resolver found in
// cache (rendered for another subscriber of the same operation) becomes a frame without
// executing anything, and an item rendered here is stored in cache for the others. Other
// operations are paired with nothing: live frames without cursor. A subscription whose first
// response has errors and no data (the resolver refused it: FORBIDDEN, CURSOR_EXPIRED, …) ends
// with a terminal error frame. A panic is logged (logger may be nil) and ends the operation
// with an internal error. cache may be nil.
func Run(ctx context.Context, exec graphql.GraphExecutor, op *graphql.OperationContext, q *Queue, enc Encoder, cache *streamctl.RenderCache, logger *slog.Logger) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if r := recover(); r != nil {
			logger.Error("graphql operation panicked", "operation", op.OperationName,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			q.Finish(enc.Error(gqlerror.List{InternalError()}))
		}
	}()
	subscription := op.Operation != nil && op.Operation.Operation == ast.Subscription
	var fingerprint string
	if subscription && cache != nil {
		fingerprint = Fingerprint(op)
	}
	tracker := streamctl.NewQueue(cache, fingerprint)
	if subscription {
		// A live item rendered for another subscriber becomes a frame in the resolver's
		// goroutine: nothing to execute, so no hand-over to this one. A full queue ends the
		// stream (SLOW_CONSUMER) just as below.
		tracker.SetDirect(func(it streamctl.Item) bool {
			f := enc.Next(it.Data)
			f.Cursor = it.Cursor
			return q.Push(ctx, f, false) == nil
		})
	}
	q.setTracker(tracker)
	// The tracker must be in the context before dispatch: the subscription resolver runs
	// inside DispatchOperation and reports its start cursor there.
	ctx = streamctl.WithTracker(ctx, tracker)
	responses, rctx := exec.DispatchOperation(ctx, op)
	if subscription && tracker.Started() {
		for {
			it, ok := tracker.Wait(ctx)
			if !ok {
				break
			}
			var frame Frame
			if it.Data != nil {
				// Rendered for another subscriber of the operation.
				frame = enc.Next(it.Data)
			} else {
				resp := responses(rctx)
				if resp == nil {
					break
				}
				// The response's data lives in a buffer the executor reuses on the next call,
				// so the payload is encoded before asking for another response.
				shared := enc.Shared(Payload(resp))
				if len(resp.Errors) == 0 {
					cached := shared
					if len(resp.Extensions) > 0 || resp.Label != "" || resp.Path != nil || resp.HasNext != nil {
						// The others get the data alone, not this execution's extras.
						cached = enc.Shared(Payload(&graphql.Response{Data: resp.Data}))
					}
					tracker.Store(it.Key, cached)
				}
				frame = enc.Next(shared)
			}
			frame.Cursor = it.Cursor
			err := q.Push(ctx, frame, it.Replay)
			tracker.Handled()
			if err != nil {
				return
			}
		}
		q.Finish(enc.Complete())
		return
	}
	for first := true; ; first = false {
		resp := responses(rctx)
		if resp == nil {
			break
		}
		if first && subscription && len(resp.Errors) > 0 && noData(resp.Data) {
			q.Finish(enc.Error(resp.Errors))
			return
		}
		if err := q.Push(ctx, enc.Next(enc.Shared(Payload(resp))), false); err != nil {
			return
		}
	}
	q.Finish(enc.Complete())
}

// Payload encodes a response as the JSON payload of a next frame ({"data":…}, with errors or
// extensions when it has them). A response that cannot be encoded (a bug in a scalar) becomes
// an internal error.
func Payload(resp *graphql.Response) []byte {
	payload, err := json.Marshal(resp)
	if err != nil {
		payload, _ = json.Marshal(graphql.Response{Errors: gqlerror.List{InternalError()}})
	}
	return payload
}

// InternalError is the error shown for failures whose details are only logged.
func InternalError() *gqlerror.Error {
	return &gqlerror.Error{
		Message:    "internal server error",
		Extensions: map[string]any{"code": "INTERNAL_SERVER_ERROR"},
	}
}

func noData(d []byte) bool {
	return len(d) == 0 || string(d) == "null"
}
