package main

import (
	"context"

	"github.com/distsync/distsync"
)

// runLock is lock (a Mutex), rlock (an RWMutex's read lease) and wlock
// (its write lease).
func runLock(c *config, sigs *signals) int {
	return acquireAndHold(c, sigs, func(ctx context.Context, s distsync.Session, try bool) (distsync.Lease, error) {
		if c.verb == "lock" {
			m, err := s.Mutex(c.name)
			if err != nil {
				return nil, err
			}
			if try {
				return m.TryLock(ctx)
			}
			return m.Lock(ctx)
		}
		rw, err := s.RWMutex(c.name)
		if err != nil {
			return nil, err
		}
		switch {
		case c.verb == "rlock" && try:
			return rw.TryRLock(ctx)
		case c.verb == "rlock":
			return rw.RLock(ctx)
		case try:
			return rw.TryLock(ctx)
		}
		return rw.Lock(ctx)
	})
}
