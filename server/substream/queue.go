// Package substream is the outbound side of one GraphQL operation, shared by eventgate's
// streaming transports (server/wsgraphql and server/ssegraphql): a bounded queue of encoded
// frames between the goroutines that produce them (Start: the resolver's, or the one that
// executes an item) and the connection's writer.
//
// The queue implements the backpressure policy of DESIGN.md §5. Live frames never wait: when
// the queue is full the subscription is ended with SLOW_CONSUMER, so a stalled client never
// blocks the event publisher or other subscribers. Replay frames (stored history, as reported by
// the resolver through server/streamctl) wait for space instead, so history is sent at the
// client's pace and never dropped. The queue remembers the cursor of the last frame handed to
// the writer, which is where a dropped client resumes.
package substream

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventgate/eventgate/server/streamctl"
)

// CodeSlowConsumer is the error code of a subscription ended because its client fell behind.
const CodeSlowConsumer = "SLOW_CONSUMER"

// SlowConsumerMessage is the message of the SLOW_CONSUMER error.
const SlowConsumerMessage = "subscriber too slow; resume with after"

var (
	// ErrSlowConsumer is returned by Push when a live frame found the queue full; the stream
	// has ended and the writer will send the SLOW_CONSUMER error.
	ErrSlowConsumer = errors.New("subscriber too slow")
	// ErrEnded is returned by Push after the stream ended (finished, aborted or dropped).
	ErrEnded = errors.New("stream ended")
)

// SlowConsumerError is the GraphQL error sent to a dropped subscriber. cursor is where it
// resumes with `after`; an empty cursor is sent as null.
func SlowConsumerError(cursor string) *gqlerror.Error {
	var c any
	if cursor != "" {
		c = cursor
	}
	return &gqlerror.Error{
		Message:    SlowConsumerMessage,
		Extensions: map[string]any{"code": CodeSlowConsumer, "cursor": c},
	}
}

// Frame is one encoded outbound message of an operation: Data followed by Tail. Both may be
// shared with other frames (a next frame's tail is shared by every subscriber of the same
// operation, its head by every frame of the subscription), so nobody modifies them.
type Frame struct {
	// Data is the message as written to the wire, or its head when Tail is set.
	Data []byte
	// Tail is the rest of the message (nil: none).
	Tail []byte
	// Cursor is the log position of the item the frame carries, "" when it has none.
	Cursor string
}

// Status tells the writer what Pop returned.
type Status int

const (
	// None: nothing to write now.
	None Status = iota
	// Data: a frame of the stream; more may follow.
	Data
	// Final: the stream's last frame (its completion or terminal error); Frame.Data may be
	// nil when nothing is to be sent. Nothing follows.
	Final
	// Slow: the subscriber fell behind. The writer sends the SLOW_CONSUMER error with
	// Frame.Cursor as the resume point; nothing follows.
	Slow
)

// Stats aggregates what the queues of one transport did. Its methods are safe for concurrent use.
type Stats struct {
	peak atomic.Int64
	slow atomic.Int64
}

// Peak returns the largest number of frames any queue held at once.
func (s *Stats) Peak() int { return int(s.peak.Load()) }

// SlowConsumers returns how many subscriptions were ended with SLOW_CONSUMER.
func (s *Stats) SlowConsumers() int64 { return s.slow.Load() }

func (s *Stats) observe(n int) {
	if s == nil {
		return
	}
	for {
		p := s.peak.Load()
		if int64(n) <= p || s.peak.CompareAndSwap(p, int64(n)) {
			return
		}
	}
}

// Queue is the bounded outbound queue of one operation. Pushes come one at a time (Start
// never has two in flight), pops from the connection's writer; any goroutine may Finish or
// Abort.
type Queue struct {
	size  int
	stats *Stats
	wake  func()
	track *streamctl.Queue
	// space wakes a replay Push waiting for room; capacity 1 because there is one pusher.
	space chan struct{}

	mu        sync.Mutex
	buf       []Frame // ring, grown on demand up to size so idle subscriptions cost little
	head, n   int
	ended     bool   // no more frames accepted
	slow      bool   // ended by overflow
	final     []byte // what to send after the last frame when !slow
	consumed  bool   // the writer took the end
	scheduled bool   // the writer has been told to come (wake called, Pop pending)
	last      string // cursor of the last frame handed to the writer
}

// NewQueue returns a queue holding at most size frames (size < 1 means 1). wake is called,
// without locks held, whenever the queue gets something for a writer that is not already
// coming for it; after that the writer must Pop until more is false. stats may be nil.
func NewQueue(size int, stats *Stats, wake func()) *Queue {
	if size < 1 {
		size = 1
	}
	return &Queue{size: size, stats: stats, wake: wake, space: make(chan struct{}, 1)}
}

func (q *Queue) setTracker(t *streamctl.Queue) {
	q.mu.Lock()
	q.track = t
	q.mu.Unlock()
}

// Push queues a frame. A replay frame waits for room (or for ctx); a live frame that finds the
// queue still full after LiveGrace ends the stream with SLOW_CONSUMER: the frames still queued
// are discarded, since
// the client resumes from the last frame actually handed to the writer, and ErrSlowConsumer is
// returned. After the stream ended Push returns ErrEnded.
func (q *Queue) Push(ctx context.Context, f Frame, replay bool) error {
	var deadline time.Time
	for {
		q.mu.Lock()
		if q.ended {
			q.mu.Unlock()
			return ErrEnded
		}
		if q.n < q.size {
			q.append(f)
			q.stats.observe(q.n)
			q.unlockAndWake()
			return nil
		}
		if !replay && deadline.IsZero() {
			deadline = time.Now().Add(LiveGrace)
		}
		if !replay && !time.Now().Before(deadline) {
			q.drop()
			q.ended, q.slow = true, true
			if q.stats != nil {
				q.stats.slow.Add(1)
			}
			q.unlockAndWake()
			return ErrSlowConsumer
		}
		q.mu.Unlock()
		if replay {
			select {
			case <-q.space:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		timer := time.NewTimer(time.Until(deadline))
		select {
		case <-q.space:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
		timer.Stop()
	}
}

// LiveGrace is how long a live frame may wait for room in a full queue before the subscription
// ends with SLOW_CONSUMER: a burst a healthy client drains in time passes; a client that stopped
// reading is dropped. The wait holds up only this subscription's own goroutine.
const LiveGrace = time.Second

// Finish ends the stream normally: final (nil for nothing) is sent after the queued frames.
// It does nothing when the stream already ended.
func (q *Queue) Finish(final []byte) {
	q.mu.Lock()
	if q.ended {
		q.mu.Unlock()
		return
	}
	q.ended, q.final = true, final
	q.unlockAndWake()
}

// Abort ends the stream at once: queued frames are discarded and only final (nil for
// nothing) is sent. A Push waiting for room returns ErrEnded. A stream that finished but whose
// end the writer has not taken yet is cut short too (a client that completed an operation gets
// nothing more for its id, which it may reuse at once); Abort does nothing once the end was
// taken, or after an overflow, whose SLOW_CONSUMER error stands.
func (q *Queue) Abort(final []byte) {
	q.mu.Lock()
	if q.consumed || q.slow {
		q.mu.Unlock()
		return
	}
	q.drop()
	q.ended, q.final = true, final
	q.unlockAndWake()
	q.signalSpace()
}

// Pop takes what the writer sends next. more reports whether Pop should be called again; when
// it is false the queue calls wake once it has something new.
func (q *Queue) Pop() (f Frame, st Status, more bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.n > 0:
		f = q.takeLocked()
		if q.n == 0 && len(q.buf) > keepRing {
			q.release()
		}
		st = Data
		q.signalSpace()
	case q.ended && !q.consumed:
		q.consumed = true
		if q.slow {
			f, st = Frame{Cursor: q.resumeLocked()}, Slow
		} else {
			f, st = Frame{Data: q.final}, Final
		}
	default:
		st = None
	}
	more = q.n > 0 || (q.ended && !q.consumed)
	q.scheduled = more
	return f, st, more
}

// PopFrames takes up to len(buf) data frames at once into buf, in order, with one lock instead
// of one per frame: the writer of a busy stream writes them together. It returns how many it
// took and whether Pop should be called again, as Pop does. When it takes none, Pop tells what
// is left (the end of the stream, or nothing).
func (q *Queue) PopFrames(buf []Frame) (n int, more bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for n < len(buf) && q.n > 0 {
		buf[n] = q.takeLocked()
		n++
	}
	if n == 0 {
		return 0, q.n > 0 || (q.ended && !q.consumed)
	}
	if q.n == 0 && len(q.buf) > keepRing {
		q.release()
	}
	q.signalSpace()
	more = q.n > 0 || (q.ended && !q.consumed)
	q.scheduled = more
	return n, more
}

// takeLocked removes the first queued frame (there is one) and returns it. The frame counts as
// sent from here: the writer writes it next, and if that write fails the connection is gone and
// nobody hears about a resume point anyway.
func (q *Queue) takeLocked() Frame {
	f := q.buf[q.head]
	q.buf[q.head] = Frame{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if f.Cursor != "" {
		q.last = f.Cursor
	}
	return f
}

// ResumeCursor returns the cursor of the last frame handed to the writer, else the cursor the
// resolver started from.
func (q *Queue) ResumeCursor() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.resumeLocked()
}

// Len returns the number of queued frames.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

func (q *Queue) resumeLocked() string {
	if q.last != "" || q.track == nil {
		return q.last
	}
	return q.track.StartCursor()
}

// append adds f; the caller checked q.n < q.size.
func (q *Queue) append(f Frame) {
	if q.n == len(q.buf) {
		grown := make([]Frame, min(max(2*len(q.buf), 4), q.size))
		for i := range q.n {
			grown[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = grown, 0
	}
	q.buf[(q.head+q.n)%len(q.buf)] = f
	q.n++
}

// drop discards the queued frames.
func (q *Queue) drop() {
	q.n = 0
	q.release()
}

// keepRing is the ring size an emptied queue keeps: small enough to cost little on an idle
// subscription (2 KiB at most, and only after a burst), large enough that neither a steady
// trickle nor the usual burst of a batch of events allocates a ring again each time.
const keepRing = 32

// release frees the ring of an empty queue, so a burst does not pin memory for the lifetime
// of a mostly idle subscription.
func (q *Queue) release() {
	q.buf, q.head = nil, 0
}

// unlockAndWake unlocks q.mu and calls wake if the writer is not already coming.
func (q *Queue) unlockAndWake() {
	call := !q.scheduled
	q.scheduled = true
	q.mu.Unlock()
	if call && q.wake != nil {
		q.wake()
	}
}

func (q *Queue) signalSpace() {
	select {
	case q.space <- struct{}{}:
	default:
	}
}
