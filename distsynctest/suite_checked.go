package distsynctest

import (
	"context"
	"testing"

	"github.com/distsync/distsync"
)

// The checked types wrap a Session, its primitives and its leases, and
// fail the test whenever an error they return — or a Lease's Err — wraps
// anything but exactly one sentinel of the contract. The conformance suite
// runs through them, so every error it sees is checked.

func checkOne(t *testing.T, what string, err error) error {
	if err != nil {
		if n := len(Sentinels(err)); n != 1 {
			t.Errorf("%s: error wraps %d sentinels of the contract, want exactly 1: %v", what, n, err)
		}
	}
	return err
}

type checkedSession struct {
	t *testing.T
	s distsync.Session
}

func (c checkedSession) Mutex(name string) (distsync.Mutex, error) {
	m, err := c.s.Mutex(name)
	if err != nil {
		return nil, checkOne(c.t, "Session.Mutex", err)
	}
	return checkedMutex{c.t, m}, nil
}

func (c checkedSession) RWMutex(name string) (distsync.RWMutex, error) {
	rw, err := c.s.RWMutex(name)
	if err != nil {
		return nil, checkOne(c.t, "Session.RWMutex", err)
	}
	return checkedRW{checkedMutex{c.t, rw}, rw}, nil
}

func (c checkedSession) Semaphore(ctx context.Context, name string, limit int64) (distsync.Semaphore, error) {
	s, err := c.s.Semaphore(ctx, name, limit)
	if err != nil {
		return nil, checkOne(c.t, "Session.Semaphore", err)
	}
	return checkedSem{c.t, s}, nil
}

func (c checkedSession) Election(name string) (distsync.Election, error) {
	e, err := c.s.Election(name)
	if err != nil {
		return nil, checkOne(c.t, "Session.Election", err)
	}
	return checkedElection{c.t, e}, nil
}

func (c checkedSession) Inspect(ctx context.Context, name string) (distsync.Status, error) {
	st, err := c.s.Inspect(ctx, name)
	return st, checkOne(c.t, "Session.Inspect", err)
}

func (c checkedSession) ForceRelease(ctx context.Context, name string, token uint64) error {
	return checkOne(c.t, "Session.ForceRelease", c.s.ForceRelease(ctx, name, token))
}

func (c checkedSession) Close() error { return checkOne(c.t, "Session.Close", c.s.Close()) }

// checkLease wraps l (nil stays nil) and checks err.
func checkLease(t *testing.T, what string, l distsync.Lease, err error) (distsync.Lease, error) {
	if err != nil {
		return nil, checkOne(t, what, err)
	}
	return &checkedLease{t: t, l: l}, nil
}

type checkedMutex struct {
	t *testing.T
	m distsync.Mutex
}

func (c checkedMutex) Lock(ctx context.Context) (distsync.Lease, error) {
	l, err := c.m.Lock(ctx)
	return checkLease(c.t, "Lock", l, err)
}

func (c checkedMutex) TryLock(ctx context.Context) (distsync.Lease, error) {
	l, err := c.m.TryLock(ctx)
	return checkLease(c.t, "TryLock", l, err)
}

type checkedRW struct {
	checkedMutex
	rw distsync.RWMutex
}

func (c checkedRW) RLock(ctx context.Context) (distsync.Lease, error) {
	l, err := c.rw.RLock(ctx)
	return checkLease(c.t, "RLock", l, err)
}

func (c checkedRW) TryRLock(ctx context.Context) (distsync.Lease, error) {
	l, err := c.rw.TryRLock(ctx)
	return checkLease(c.t, "TryRLock", l, err)
}

type checkedSem struct {
	t *testing.T
	s distsync.Semaphore
}

func (c checkedSem) Acquire(ctx context.Context) (distsync.Lease, error) {
	l, err := c.s.Acquire(ctx)
	return checkLease(c.t, "Acquire", l, err)
}

func (c checkedSem) TryAcquire(ctx context.Context) (distsync.Lease, error) {
	l, err := c.s.TryAcquire(ctx)
	return checkLease(c.t, "TryAcquire", l, err)
}

func (c checkedSem) AcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	l, err := c.s.AcquireN(ctx, n)
	return checkLease(c.t, "AcquireN", l, err)
}

func (c checkedSem) TryAcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	l, err := c.s.TryAcquireN(ctx, n)
	return checkLease(c.t, "TryAcquireN", l, err)
}

func (c checkedSem) Limit() int64 { return c.s.Limit() }

func (c checkedSem) SetLimit(ctx context.Context, limit int64) error {
	return checkOne(c.t, "SetLimit", c.s.SetLimit(ctx, limit))
}

type checkedElection struct {
	t *testing.T
	e distsync.Election
}

func (c checkedElection) Campaign(ctx context.Context, value []byte) (distsync.Leadership, error) {
	l, err := c.e.Campaign(ctx, value)
	if err != nil {
		return nil, checkOne(c.t, "Campaign", err)
	}
	return &checkedLeadership{checkedLease{t: c.t, l: l}, l}, nil
}

func (c checkedElection) Leader(ctx context.Context) (distsync.Leader, error) {
	l, err := c.e.Leader(ctx)
	return l, checkOne(c.t, "Leader", err)
}

func (c checkedElection) Observe(ctx context.Context) <-chan distsync.Leader { return c.e.Observe(ctx) }

type checkedLease struct {
	t *testing.T
	l distsync.Lease
}

func (c *checkedLease) Token() uint64         { return c.l.Token() }
func (c *checkedLease) Done() <-chan struct{} { return c.l.Done() }
func (c *checkedLease) Err() error            { return checkOne(c.t, "Lease.Err", c.l.Err()) }
func (c *checkedLease) Release(ctx context.Context) error {
	return checkOne(c.t, "Release", c.l.Release(ctx))
}

type checkedLeadership struct {
	checkedLease
	ld distsync.Leadership
}

func (c *checkedLeadership) Proclaim(ctx context.Context, value []byte) error {
	return checkOne(c.t, "Proclaim", c.ld.Proclaim(ctx, value))
}

// unwrapLease returns the backend's own Lease behind a checked one, for
// the hooks that reach into the backend (DeleteHolder).
func unwrapLease(l distsync.Lease) distsync.Lease {
	switch c := l.(type) {
	case *checkedLease:
		return c.l
	case *checkedLeadership:
		return c.ld
	}
	return l
}
