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
// Each response is paired, in order, with the item the resolver reported through q's tracker,
// which gives the frame its cursor and tells whether it is replay. A subscription whose first
// response has errors and no data (the resolver refused it: FORBIDDEN, CURSOR_EXPIRED, …) ends
// with a terminal error frame. A panic is logged (logger may be nil) and ends the operation
// with an internal error.
func Run(ctx context.Context, exec graphql.GraphExecutor, op *graphql.OperationContext, q *Queue, enc Encoder, logger *slog.Logger) {
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
	// The tracker must be in the context before dispatch: the subscription resolver runs
	// inside DispatchOperation and reports its start cursor there.
	ctx = streamctl.WithTracker(ctx, q.Tracker())
	responses, rctx := exec.DispatchOperation(ctx, op)
	subscription := op.Operation != nil && op.Operation.Operation == ast.Subscription
	for first := true; ; first = false {
		resp := responses(rctx)
		if resp == nil {
			break
		}
		// The response's data lives in a buffer the executor reuses on the next call, so
		// the frame is encoded before asking for another response.
		it, _ := q.Tracker().Next()
		if first && subscription && len(resp.Errors) > 0 && noData(resp.Data) {
			q.Finish(enc.Error(resp.Errors))
			return
		}
		if err := q.Push(ctx, Frame{Data: enc.Next(resp), Cursor: it.Cursor}, it.Replay); err != nil {
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
