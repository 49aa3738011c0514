package main

import (
	"context"
	"errors"
	"time"

	"github.com/distsync/distsync"
)

// tryCampaign bounds the campaign of elect --try, which the Election
// interface has no non-waiting form of.
const tryCampaign = 2 * time.Second

// runElect is elect: campaign with VALUE (default: the identity) and hold
// leadership; its Token is the term.
func runElect(c *config, sigs *signals) int {
	value := c.arg
	if !c.hasArg {
		value = c.holderIdentity()
	}
	return acquireAndHold(c, sigs, func(ctx context.Context, s distsync.Session, try bool) (distsync.Lease, error) {
		e, err := s.Election(c.name)
		if err != nil {
			return nil, err
		}
		if !try {
			return e.Campaign(ctx, []byte(value))
		}
		// --try: give up when someone leads, or when another candidate
		// wins the race to an empty election.
		if _, err := e.Leader(ctx); err == nil {
			return nil, distsync.ErrWouldBlock
		} else if !errors.Is(err, distsync.ErrNoLeader) {
			return nil, err
		}
		tctx, cancel := context.WithTimeout(ctx, tryCampaign)
		defer cancel()
		l, err := e.Campaign(tctx, []byte(value))
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, distsync.Errorf(distsync.ErrWouldBlock, err, "another candidate leads")
		}
		return l, err
	})
}
