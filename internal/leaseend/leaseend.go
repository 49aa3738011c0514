// Package leaseend is how every backend's Lease ends: a Done channel closed
// exactly once, and the reason, which never changes afterwards.
package leaseend

import "sync"

// End is the ending of one lease; its zero value is a lease not yet ended.
// Embed it to give a Lease its Done and Err. It is safe for concurrent use
// and must not be copied after first use.
type End struct {
	once sync.Once
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func (e *End) ch() chan struct{} {
	e.once.Do(func() { e.done = make(chan struct{}) })
	return e.done
}

// Done returns a channel closed when the lease ends (released or lost).
func (e *End) Done() <-chan struct{} { return e.ch() }

// Err returns nil while the lease is held, then why it ended: an error
// wrapping distsync.ErrReleased or distsync.ErrLost and its cause.
func (e *End) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// Set ends the lease with err (non-nil), unless it has already ended, and
// reports whether this call ended it.
func (e *End) Set(err error) bool {
	ch := e.ch()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return false
	}
	e.err = err
	close(ch)
	return true
}
