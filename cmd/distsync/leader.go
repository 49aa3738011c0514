package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/distsync/distsync"
)

// runLeader is leader: print the leader's value, or exit 176 when none.
func runLeader(c *config, sigs *signals) int {
	return withSession(c, sigs, func(ctx context.Context, s distsync.Session, end func() os.Signal) int {
		e, err := s.Election(c.name)
		if err != nil {
			return fail(c, err)
		}
		l, err := e.Leader(ctx)
		if errors.Is(err, distsync.ErrNoLeader) {
			return exitNoLeader
		}
		if err != nil {
			return failOrSignal(c, err, end)
		}
		if c.output == "json" {
			b, _ := json.Marshal(struct {
				Value string `json:"value"`
				Term  uint64 `json:"term"`
			}{string(l.Value), l.Term})
			fmt.Fprintf(c.stdout, "%s\n", b)
		} else {
			fmt.Fprintf(c.stdout, "%s\n", l.Value)
		}
		return exitOK
	})
}
