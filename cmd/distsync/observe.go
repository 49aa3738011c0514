package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/distsync/distsync"
)

// runObserve is observe: print every change of leader until a signal.
func runObserve(c *config, sigs *signals) int {
	return withSession(c, sigs, func(ctx context.Context, s distsync.Session, end func() os.Signal) int {
		e, err := s.Election(c.name)
		if err != nil {
			return fail(c, err)
		}
		for l := range e.Observe(ctx) {
			if c.output == "json" {
				b, _ := json.Marshal(struct {
					Term  uint64 `json:"term"`
					Value string `json:"value"`
					None  bool   `json:"none"`
					Time  string `json:"time"`
				}{l.Term, string(l.Value), l.None, l.Time.Format(time.RFC3339Nano)})
				fmt.Fprintf(c.stdout, "%s\n", b)
			} else if l.None {
				fmt.Fprintln(c.stdout, "none")
			} else {
				fmt.Fprintf(c.stdout, "term=%d value=%s\n", l.Term, l.Value)
			}
		}
		// The channel closes when ctx ends: a signal, the normal way out.
		return exitOK
	})
}
