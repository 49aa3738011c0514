package zksync

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/telemetry"
)

// RWMutex is a distributed reader/writer lock on ZooKeeper, opened by
// Session.RWMutex, after the ZooKeeper recipe: a reader waits for the next
// older writer only, a writer for the next older node of any kind. Grants
// follow arrival order, so a waiting writer holds back later readers and
// is never starved. It is safe for concurrent use; every call is a
// separate acquisition.
type RWMutex struct {
	q    *queue
	r, w *telemetry.Target
}

var _ distsync.RWMutex = (*RWMutex)(nil)

// Lock blocks until the write lease is held or ctx ends: until every older
// reader and writer has released. On failure or cancellation nothing is
// left behind, within distsync.CancelGrace after ctx ended when ZooKeeper
// answers (see Mutex.Lock for the cleanup and the errors).
func (rw *RWMutex) Lock(ctx context.Context) (distsync.Lease, error) {
	return lease(take(ctx, rw.w, rw.q, exclusive(writeKind), rw.q.identity(), false))
}

// TryLock takes the write lease only if no reader or writer holds or waits;
// otherwise it returns an error wrapping distsync.ErrWouldBlock and leaves
// nothing behind.
func (rw *RWMutex) TryLock(ctx context.Context) (distsync.Lease, error) {
	return lease(take(ctx, rw.w, rw.q, exclusive(writeKind), rw.q.identity(), true))
}

// RLock blocks until a read lease is held or ctx ends: until every older
// writer has released (readers do not wait for each other). On failure or
// cancellation nothing is left behind, as with Lock.
func (rw *RWMutex) RLock(ctx context.Context) (distsync.Lease, error) {
	return lease(take(ctx, rw.r, rw.q, shared(readKind), rw.q.identity(), false))
}

// TryRLock takes a read lease only if no writer holds or waits; otherwise
// it returns an error wrapping distsync.ErrWouldBlock and leaves nothing
// behind.
func (rw *RWMutex) TryRLock(ctx context.Context) (distsync.Lease, error) {
	return lease(take(ctx, rw.r, rw.q, shared(readKind), rw.q.identity(), true))
}

// Path returns the RWMutex's node.
func (rw *RWMutex) Path() string { return rw.q.path }

// Session returns the Session the RWMutex was opened from.
func (rw *RWMutex) Session() *Session { return rw.q.s }
