package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/distsync/distsync"
)

// releaseTimeout bounds the release after the command exits.
const releaseTimeout = 5 * time.Second

// acquireFunc takes the lease of a verb on s, bounded by ctx. try asks for
// the non-waiting variant.
type acquireFunc func(ctx context.Context, s distsync.Session, try bool) (distsync.Lease, error)

// acquireAndHold opens the Session, acquires with acquire and holds the
// lease: it runs the command under it, or, without a command, prints the
// token and holds until a signal. It returns the exit code.
func acquireAndHold(c *config, sigs *signals, acquire acquireFunc) int {
	ctx, end := sigs.watch(context.Background())
	s, err := open(ctx, c)
	if err != nil {
		if sig := end(); sig != nil {
			return signalExit(sig)
		}
		return fail(c, err)
	}
	defer s.Close()

	actx, cancel := ctx, context.CancelFunc(func() {})
	if c.wait > 0 && !c.try {
		actx, cancel = context.WithTimeout(ctx, c.wait)
	}
	l, err := acquire(actx, s, c.try)
	timedOut := errors.Is(actx.Err(), context.DeadlineExceeded)
	cancel()
	sig := end()
	switch {
	case err == nil && sig != nil:
		// Granted in the instant of the signal: give it back.
		release(c, l)
		return signalExit(sig)
	case err == nil:
	case sig != nil:
		return signalExit(sig)
	case timedOut && errors.Is(err, context.DeadlineExceeded):
		return c.conflict
	case errors.Is(err, distsync.ErrWouldBlock):
		return c.conflict
	default:
		return fail(c, err)
	}
	return hold(c, l, time.Now(), sigs)
}

// hold holds l, acquired at start, and returns the exit code.
func hold(c *config, l distsync.Lease, start time.Time, sigs *signals) int {
	var code int
	if c.cmd == nil {
		fmt.Fprintln(c.stdout, l.Token())
		select {
		case <-sigs.ch:
		case <-l.Done():
			fmt.Fprintf(c.stderr, "distsync: lost %s (token %d): %v\n", c.name, l.Token(), l.Err())
			return exitLost
		}
	} else {
		ch := &child{
			argv:  c.cmd,
			env:   childEnv(os.Environ(), c.name, l.Token(), c.backend, c.holderIdentity()),
			grace: c.killGrace,
			log:   c.stderr,
			onLoss: func(err error) {
				fmt.Fprintf(c.stderr, "distsync: lost %s (token %d): %v; stopping the command\n", c.name, l.Token(), err)
			},
		}
		code = ch.run(l, sigs.ch)
		if code == exitLost {
			return exitLost
		}
	}
	minHold(c, l, start, sigs)
	release(c, l)
	return code
}

// minHold waits out --min-hold from start, unless the lease ends or a
// signal comes first.
func minHold(c *config, l distsync.Lease, start time.Time, sigs *signals) {
	left := time.Until(start.Add(c.minHold))
	if left <= 0 {
		return
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.Done():
	case <-sigs.ch:
	}
}

// release gives l up, bounded by releaseTimeout; a failure is logged but
// does not change the exit code.
func release(c *config, l distsync.Lease) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := l.Release(ctx); err != nil && !errors.Is(err, distsync.ErrLost) {
		fmt.Fprintf(c.stderr, "distsync: release %s (token %d): %v\n", c.name, l.Token(), err)
	} else if err != nil {
		fmt.Fprintf(c.stderr, "distsync: %s (token %d) was lost before its release: %v\n", c.name, l.Token(), err)
	}
}
