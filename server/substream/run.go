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
// never called concurrently: from Start's goroutine or the one executing an item, and Next
// also from the resolver's (see streamctl.Queue), one at a time.
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
// queues its responses on q until the stream ends, q overflows or ctx is cancelled. It blocks
// until then; see Start for what it does.
func Run(ctx context.Context, exec graphql.GraphExecutor, op *graphql.OperationContext, q *Queue, enc Encoder, cache *streamctl.RenderCache, logger *slog.Logger) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	Start(ctx, cancel, exec, op, q, enc, cache, logger, func() { close(done) })
	<-done
}

// Start executes one operation whose context was created by exec.CreateOperationContext and
// queues its responses on q until the stream ends, q overflows or ctx is cancelled; then it
// calls ended, once. stop cancels ctx: Start calls it when the stream ended on its side (q
// overflowed or was aborted), so that the resolver stops too.
//
// A subscription whose resolver reports through streamctl is driven by those reports, in order:
// each gives the frame its cursor and says whether it is replay; an item the resolver found in
// cache (rendered for another subscriber of the same operation) becomes a frame without
// executing anything, in the resolver's goroutine, and an item rendered here is stored in cache
// for the others. Start returns as soon as such a subscription is dispatched: it then runs on
// the resolver's goroutine, and items that need executing are executed on a goroutine that
// lives only while it has one (streamctl.Queue.SetConsumer), so an idle subscription holds no
// goroutine of the transport's. Other operations are executed on the calling goroutine before
// Start returns, paired with nothing: live frames without cursor. A subscription whose first
// response has errors and no data (the resolver refused it: FORBIDDEN, CURSOR_EXPIRED, …) ends
// with a terminal error frame. A panic is logged (logger may be nil) and ends the operation
// with an internal error. cache may be nil.
func Start(ctx context.Context, stop context.CancelFunc, exec graphql.GraphExecutor, op *graphql.OperationContext, q *Queue, enc Encoder, cache *streamctl.RenderCache, logger *slog.Logger, ended func()) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	subscription := op.Operation != nil && op.Operation.Operation == ast.Subscription
	var fingerprint string
	if subscription && cache != nil {
		fingerprint = Fingerprint(op)
	}
	tracker := streamctl.NewQueue(cache, fingerprint)
	panicked := func(r any) {
		logger.Error("graphql operation panicked", "operation", op.OperationName,
			"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		q.Finish(enc.Error(gqlerror.List{InternalError()}))
		stop()
	}
	detached := false
	defer func() {
		if r := recover(); r != nil {
			panicked(r)
			if tracker.Started() {
				// The resolver runs on and calls End: the operation ends then.
				tracker.SetConsumer(ctx, func(streamctl.Item) bool { return false }, ended)
				return
			}
		}
		if !detached {
			ended()
		}
	}()
	if subscription {
		// A live item rendered for another subscriber becomes a frame in the resolver's
		// goroutine. A full queue ends the stream (SLOW_CONSUMER) just as below.
		tracker.SetDirect(func(it streamctl.Item) bool {
			f := enc.Next(it.Data)
			f.Cursor = it.Cursor
			if q.Push(ctx, f, false) != nil {
				stop()
				return false
			}
			return true
		})
	}
	q.setTracker(tracker)
	// The tracker must be in the context before dispatch: the subscription resolver runs
	// inside DispatchOperation and reports its start cursor there.
	ctx = streamctl.WithTracker(ctx, tracker)
	responses, rctx := exec.DispatchOperation(ctx, op)
	if subscription && tracker.Started() {
		detached = true
		tracker.SetConsumer(ctx, func(it streamctl.Item) (ok bool) {
			defer func() {
				if r := recover(); r != nil {
					panicked(r)
					ok = false
				}
			}()
			if !pushItem(ctx, q, enc, tracker, it, responses, rctx) {
				stop()
				return false
			}
			return true
		}, func() {
			q.Finish(enc.Complete())
			ended()
		})
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

// pushItem queues the frame of one reported item: its rendering from the cache, else the
// next response of the executor. It reports false when the stream is over.
func pushItem(ctx context.Context, q *Queue, enc Encoder, tracker *streamctl.Queue, it streamctl.Item, responses graphql.ResponseHandler, rctx context.Context) bool {
	var frame Frame
	if it.Data != nil {
		// Rendered for another subscriber of the operation.
		frame = enc.Next(it.Data)
	} else {
		resp := responses(rctx)
		if resp == nil {
			return false
		}
		// The response's data lives in a buffer the executor reuses on the next call, so
		// the payload is encoded before asking for another response.
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
	return q.Push(ctx, frame, it.Replay) == nil
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
