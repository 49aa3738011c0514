package distsync

import (
	"context"
	"sync"
)

// LeaseContext returns a copy of parent that is cancelled when the lease
// ends (released or lost) or when parent is done, whichever comes first.
// After the lease ended, context.Cause of the returned context is the
// lease's Err (wrapping ErrLost or ErrReleased). Call the returned cancel
// function when the work is done, to free the goroutine that follows the
// lease.
//
// A nil lease is not held: the returned context is already cancelled, with
// a cause wrapping ErrInvalidConfig.
func LeaseContext(parent context.Context, l Lease) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	if l == nil {
		cancel(Errorf(ErrInvalidConfig, nil, "nil lease"))
		return ctx, func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-l.Done():
			cancel(l.Err())
		case <-ctx.Done():
		case <-stop:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
			cancel(context.Canceled)
		})
	}
}
