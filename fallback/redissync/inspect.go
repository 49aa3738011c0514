package redissync

import (
	"context"

	"github.com/distsync/distsync"
)

// Inspect reads who holds and who waits for name, of whichever primitive
// kind, in one script: an atomic snapshot, after expired holders and
// waiters are reclaimed. Holders are in token order, waiters in arrival
// order. A waiter's Token is its arrival number, drawn from the counter
// of fencing tokens: unique among the name's holders and waiters, and
// below the token its Lease gets once granted. Since is when the holder
// or waiter arrived and TTL how long Redis keeps it unrenewed, both by
// the server's clock. See "Inspect and ForceRelease" in the package
// documentation. It fails with distsync.ErrInvalidName,
// distsync.ErrClosed, distsync.ErrDenied or distsync.ErrUnavailable.
func (s *Session) Inspect(ctx context.Context, name string) (distsync.Status, error) {
	return s.s.Inspect(ctx, name)
}

// ForceRelease removes the holder of name whose Token is token, or the
// waiter with that Token as Inspect reports it, comparing the token in
// one script so that a later holder is never removed. The waiters that
// now fit are granted at once. A removed holder learns of it at its next
// renewal, within a third of the TTL: its Lease then ends with an error
// wrapping distsync.ErrLost whose distsync.LostReason is
// distsync.LossForceReleased. Until then it may overlap the next holder;
// fencing tokens cover that. A removed waiter is woken at once, and its
// acquisition fails the same way. ForceRelease is logged at Warn. It
// fails with distsync.ErrNotFound when nobody has token, or as Inspect
// does.
func (s *Session) ForceRelease(ctx context.Context, name string, token uint64) error {
	return s.s.ForceRelease(ctx, name, token)
}
