package substream

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventgate/eventgate/server/streamctl"
)

// Encoder turns an operation's responses into a transport's wire frames. Its methods are
// called from Run's goroutine only.
type Encoder interface {
	// Next encodes a response that continues the stream.
	Next(resp *graphql.Response) []byte
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
			var frame []byte
			if it.Data != nil {
				frame = enc.Next(&graphql.Response{Data: it.Data})
			} else {
				resp := responses(rctx)
				if resp == nil {
					break
				}
				if len(resp.Errors) == 0 {
					tracker.Store(it.Key, resp.Data)
				}
				// The response's data lives in a buffer the executor reuses on the next call,
				// so the frame is encoded before asking for another response.
				frame = enc.Next(resp)
			}
			if err := q.Push(ctx, Frame{Data: frame, Cursor: it.Cursor}, it.Replay); err != nil {
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
		if err := q.Push(ctx, Frame{Data: enc.Next(resp)}, false); err != nil {
			return
		}
	}
	q.Finish(enc.Complete())
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
