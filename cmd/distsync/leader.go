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
	ctx, end := sigs.watch(context.Background())
	defer end()
	s, err := open(ctx, c)
	if err != nil {
		return failOrSignal(c, err, end)
	}
	defer s.Close()
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
}

// failOrSignal is fail, or 128+N when a signal N ended the wait.
func failOrSignal(c *config, err error, end func() os.Signal) int {
	if sig := end(); sig != nil {
		return signalExit(sig)
	}
	return fail(c, err)
}
