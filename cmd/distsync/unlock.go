package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/distsync/distsync"
)

// runUnlock is unlock --force: ForceRelease of one holder or waiter.
func runUnlock(c *config, sigs *signals) int {
	return withSession(c, sigs, func(ctx context.Context, s distsync.Session, end func() os.Signal) int {
		st, err := s.Inspect(ctx, c.name)
		if err != nil {
			return failOrSignal(c, err, end)
		}
		h, code := pickHolder(c, st)
		if code != exitOK {
			return code
		}
		if err := s.ForceRelease(ctx, c.name, h.Token); err != nil {
			return failOrSignal(c, err, end)
		}
		fmt.Fprintf(c.stderr, "distsync: force-released token %d (identity %s) of %s\n", h.Token, h.Identity, c.name)
		return exitOK
	})
}

// pickHolder chooses what unlock --force releases: the holder or waiter
// whose token or identity is c.arg, or the only holder without one. It
// reports a failure on stderr and returns its exit code.
func pickHolder(c *config, st distsync.Status) (distsync.Holder, int) {
	all := append(append([]distsync.Holder(nil), st.Holders...), st.Waiters...)
	var match []distsync.Holder
	switch {
	case !c.hasArg:
		match = st.Holders
	default:
		tok, err := strconv.ParseUint(c.arg, 10, 64)
		for _, h := range all {
			if err == nil && h.Token == tok {
				match = append(match, h)
			}
		}
		if len(match) == 0 {
			for _, h := range all {
				if h.Identity == c.arg {
					match = append(match, h)
				}
			}
		}
	}
	switch len(match) {
	case 1:
		return match[0], exitOK
	case 0:
		if c.hasArg {
			fmt.Fprintf(c.stderr, "distsync unlock: %s has no holder or waiter %q\n", c.name, c.arg)
		} else {
			fmt.Fprintf(c.stderr, "distsync unlock: %s has no holder\n", c.name)
		}
		return distsync.Holder{}, exitNotFound
	}
	var b strings.Builder
	for _, h := range match {
		fmt.Fprintf(&b, "\n  token %d identity %s mode %s", h.Token, h.Identity, h.Mode)
	}
	fmt.Fprintf(c.stderr, "distsync unlock: %s has %d matching holders; name one by token:%s\n", c.name, len(match), b.String())
	return distsync.Holder{}, exitUsage
}
