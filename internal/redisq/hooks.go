package redisq

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/distsync/distsync"
	"github.com/redis/go-redis/v9"
)

// Package redissync's public types hide the engine's. The functions
// below reach it for tests inside this module (they are internal, so no
// user can): redissync registers how to unwrap its values at init.
var (
	sessionOf func(distsync.Session) *Session
	leaseOf   func(distsync.Lease) *Lease
)

// Register tells this package how to find the engine behind package
// redissync's Session and leases. redissync calls it at init.
func Register(session func(distsync.Session) *Session, lease func(distsync.Lease) *Lease) {
	sessionOf, leaseOf = session, lease
}

// SessionOf returns the engine session behind s, a *redissync.Session,
// or nil.
func SessionOf(s distsync.Session) *Session {
	if sessionOf == nil {
		return nil
	}
	return sessionOf(s)
}

// LeaseOf returns the engine lease behind l, a lease or leadership of
// package redissync, or nil.
func LeaseOf(l distsync.Lease) *Lease {
	if leaseOf == nil {
		return nil
	}
	return leaseOf(l)
}

// SessionID returns the random id of s, a *redissync.Session: part of
// every member it writes.
func SessionID(s distsync.Session) string { return SessionOf(s).id }

// Member returns the lease's member in its name's sorted sets.
func (l *Lease) Member() string { return l.member }

// DropSession deletes, from outside, every holder and waiter of s on name,
// as if the session had expired. It is for tests.
func DropSession(ctx context.Context, c Client, name string, s distsync.Session) error {
	if SessionOf(s) == nil {
		return fmt.Errorf("redisq: %T is not a Session of package redissync", s)
	}
	k := SessionOf(s).Keys(name)
	return call2(ctx, func(ctx context.Context) error {
		return dropScript.Run(ctx, c, k.list(), args(k, "|"+SessionOf(s).id+"|", 0, histLook)...).Err()
	})
}

// Members lists the holders and then the waiters of name, after reclaiming
// expired ones.
func Members(ctx context.Context, c Client, name string) ([]string, error) {
	return MembersWith(ctx, c, DefaultPrefix, name)
}

// MembersWith is Members for name under prefix.
func MembersWith(ctx context.Context, c Client, prefix, name string) ([]string, error) {
	return call(ctx, func(ctx context.Context) ([]string, error) { return list(ctx, c, KeysWith(prefix, name)) })
}

// DeleteMember deletes l's entry with plain ZREM and HDEL commands, as an
// operator would, without a script (nobody is woken). It is for tests.
func DeleteMember(ctx context.Context, c redis.Cmdable, l distsync.Lease) error {
	rl := LeaseOf(l)
	if rl == nil {
		return fmt.Errorf("redisq: %T is not a lease of package redissync", l)
	}
	if err := c.ZRem(ctx, rl.k.Holders, rl.member).Err(); err != nil {
		return err
	}
	return c.HDel(ctx, rl.k.Tokens, rl.member).Err()
}

// SuspendRenewal stops (true) or resumes (false) the renewals of l, as a
// paused process would; l is still reported lost when its deadline
// passes. It is for tests.
func SuspendRenewal(l distsync.Lease, on bool) {
	rl := LeaseOf(l)
	if rl == nil {
		panic(fmt.Sprintf("redisq: %T is not a lease of package redissync", l))
	}
	rl.suspend.Store(on)
}

// Expire makes every lease and waiting acquisition of s expire unrenewed,
// as if the process had paused past its TTL, and returns once Redis has
// let their entries go (or ctx ended). The leases end lost at their
// deadline; the waiters, woken once their entries are gone, fail with
// ErrLost. Later acquisitions through s work as before. It is for tests.
func Expire(ctx context.Context, ds distsync.Session) error {
	s := SessionOf(ds)
	if s == nil {
		return fmt.Errorf("redisq: %T is not a Session of package redissync", ds)
	}
	type entry struct {
		k      Keys
		member string
	}
	var entries []entry
	s.mu.Lock()
	for l := range s.leases {
		l.suspend.Store(true)
		entries = append(entries, entry{l.k, l.member})
	}
	s.mu.Unlock()
	var waiters []*sub
	s.hub.mu.Lock()
	for _, sb := range s.hub.waiters {
		sb.suspend.Store(true)
		waiters = append(waiters, sb)
		entries = append(entries, entry{sb.k, sb.member})
	}
	s.hub.mu.Unlock()
	defer func() {
		for _, sb := range waiters {
			sb.suspend.Store(false)
			sb.signal()
		}
	}()
	poll := max(s.ttl/20, 5*time.Millisecond)
	for _, e := range entries {
		for {
			m, err := call(ctx, func(ctx context.Context) ([]string, error) { return list(ctx, s.c, e.k) })
			if err != nil {
				return err
			}
			if !slices.Contains(m, e.member) {
				break
			}
			t := time.NewTimer(poll)
			select {
			case <-ctx.Done():
				t.Stop()
				return context.Cause(ctx)
			case <-t.C:
			}
		}
	}
	return nil
}

// call2 is call for a function with no result.
func call2(ctx context.Context, f func(context.Context) error) error {
	_, err := call(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, f(ctx) })
	return err
}

// Session returns the Session that took l.
func (l *Lease) Session() *Session { return l.s }
