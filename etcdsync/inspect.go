package etcdsync

import (
	"context"

	"github.com/distsync/distsync"
)

// Inspect reads who holds and who waits for name: see
// distsync.Session.Inspect.
func (s *Session) Inspect(ctx context.Context, name string) (distsync.Status, error) {
	return distsync.Status{}, distsync.Errorf(distsync.ErrUnavailable, nil, "inspect: not implemented yet")
}

// ForceRelease removes the holder or waiter of name whose token is token:
// see distsync.Session.ForceRelease.
func (s *Session) ForceRelease(ctx context.Context, name string, token uint64) error {
	return distsync.Errorf(distsync.ErrUnavailable, nil, "force release: not implemented yet")
}
