package main

import (
	"context"

	"github.com/distsync/distsync"
)

// runSem is sem: --weight permits of a Semaphore of -n LIMIT.
func runSem(c *config, sigs *signals) int {
	return acquireAndHold(c, sigs, func(ctx context.Context, s distsync.Session, try bool) (distsync.Lease, error) {
		sem, err := s.Semaphore(ctx, c.name, c.limit)
		if err != nil {
			return nil, err
		}
		if try {
			return sem.TryAcquireN(ctx, c.weight)
		}
		return sem.AcquireN(ctx, c.weight)
	})
}
