package etcdsync

import (
	"context"

	"github.com/distsync/distsync"
)

// Inspect reads who holds and who waits for name, of whichever primitive
// kind, in one etcd transaction, then asks each distinct session lease
// among them its remaining TTL. Holders and waiters are in queue order
// (create revision); a Holder's Token is its key's create revision, its
// Lease's fencing token. etcd keeps no timestamps, so Since is zero. A
// mutex key and a candidate key look alike: both come back as
// distsync.ModeExclusive, a candidate's Identity being its campaign value.
// See distsync.Session.Inspect for the errors.
func (s *Session) Inspect(ctx context.Context, name string) (distsync.Status, error) {
	return s.src.Inspect(ctx, name)
}

// ForceRelease deletes the key of name's holder or waiter whose Token is
// token, if it still exists as created at that revision (never a later
// holder's key), which serves the next waiter. In the same transaction it
// leaves a marker on the holder's session lease, so that the holder,
// seeing its key deleted, ends its Lease with distsync.LossForceReleased
// within a round trip. It logs the release at Warn. See
// distsync.Session.ForceRelease for the errors.
func (s *Session) ForceRelease(ctx context.Context, name string, token uint64) error {
	return s.src.ForceRelease(ctx, name, token)
}
