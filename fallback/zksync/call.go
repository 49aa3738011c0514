package zksync

import (
	"context"
	"sync"
	"time"

	"github.com/distsync/distsync"
)

// call runs f, a blocking go-zookeeper call, bounded by ctx. go-zookeeper
// calls take no context, so f runs in a goroutine the Session tracks. If ctx
// has ended before the call, f is not run. If ctx ends while f is in
// flight, call waits for f's answer until the grace deadline of ctx (see
// graceDeadline): a server that answers leaves nothing running, and the
// answer is returned as f gave it, so the caller can undo what f did (the
// caller checks ctx.Err()). Past the grace, call returns ctx's error; the
// goroutine runs on until the server answers or the connection fails
// (go-zookeeper fails every pending request when it gets no answer within
// two thirds of the session timeout), and hands the answer to abandon, if
// not nil, so that what f created is removed in the background. A ctx
// ended by its session's end (see follow), or a stopped lease follower's
// (errStopped), gets no grace.
func call[T any](ctx context.Context, s *Session, f func() (T, error), abandon func(T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, context.Cause(ctx)
	}
	type result struct {
		v   T
		err error
	}
	if !s.goTracked() {
		return zero, errClosed()
	}
	var (
		mu   sync.Mutex
		left bool // the caller gave up waiting: the answer goes to abandon
	)
	res := make(chan result, 1)
	go func() {
		defer s.bg.Done()
		v, err := f()
		mu.Lock()
		gone := left
		if !gone {
			res <- result{v, err}
		}
		mu.Unlock()
		if gone && abandon != nil {
			abandon(v, err)
		}
	}()
	select {
	case r := <-res:
		return r.v, r.err
	case <-ctx.Done():
	}
	// A request that follows a session which ended (see follow) has no
	// grace: what it did goes with the session or is undone in the
	// background. Nor has a stopped lease follower's read (errStopped).
	var wait time.Duration
	if c := context.Cause(ctx); c != errSessionEnded && c != errStopped {
		wait = time.Until(graceDeadline(ctx))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-res:
		return r.v, r.err
	case <-t.C:
	}
	mu.Lock()
	left = true
	mu.Unlock()
	// The answer may have come just now; else the goroutine hands it to
	// abandon.
	select {
	case r := <-res:
		if abandon != nil {
			abandon(r.v, r.err)
		}
	default:
	}
	return zero, context.Cause(ctx)
}

// graceKey is the context key of an acquisition's *grace.
type graceKey struct{}

// A grace is the end of an acquisition's cleanup after its context ended:
// distsync.CancelGrace after the first moment the end was seen. Every step
// of one acquisition shares it, so the whole acquire call returns within
// CancelGrace of its context's end.
type grace struct {
	once sync.Once
	at   time.Time
}

// withGrace gives ctx a grace of its own, for one acquisition.
func withGrace(ctx context.Context) context.Context {
	return context.WithValue(ctx, graceKey{}, &grace{})
}

// graceDeadline returns when the cleanup after ctx's end must stop waiting
// for ZooKeeper: distsync.CancelGrace after the end was first seen in this
// acquisition, or from now for a context without a grace.
func graceDeadline(ctx context.Context) time.Time {
	g, _ := ctx.Value(graceKey{}).(*grace)
	if g == nil {
		return time.Now().Add(distsync.CancelGrace)
	}
	g.once.Do(func() { g.at = time.Now().Add(distsync.CancelGrace) })
	return g.at
}

// cleanupContext returns the context in which to undo what a call did: ctx
// while it lasts (call waits out the grace if it ends meanwhile), or, once
// ctx has ended, a context that ends at ctx's grace deadline.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil {
		return ctx, func() {}
	}
	return context.WithDeadline(context.WithoutCancel(ctx), graceDeadline(ctx))
}
