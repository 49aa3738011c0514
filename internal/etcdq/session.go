package etcdq

import (
	"context"
	"time"

	"github.com/distsync/distsync"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

const (
	// MinTTL is etcd's smallest lease TTL with its default election
	// settings (100 ms heartbeat, 10 election ticks): a server raises any
	// shorter TTL to it.
	MinTTL = 2 * time.Second
	// DefaultTTL is the session TTL used when none is given: a crashed
	// holder's lock passes on within about this long.
	DefaultTTL = 10 * time.Second
)

// CheckTTL reports whether ttl is a whole number of seconds of at least
// MinTTL; etcd leases have a granularity of one second.
func CheckTTL(ttl time.Duration) error {
	switch {
	case ttl < MinTTL:
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "session TTL %v is below etcd's minimum %v", ttl, MinTTL)
	case ttl%time.Second != 0:
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "session TTL %v is not a whole number of seconds", ttl)
	}
	return nil
}

// NewSession grants a lease of ttl and returns a session keeping it alive.
// It fails with ErrInvalidConfig when the server grants a different TTL
// than asked (a server configured with a larger minimum), so that the TTL a
// caller documents is the TTL in force.
func NewSession(ctx context.Context, c *clientv3.Client, ttl time.Duration) (*concurrency.Session, error) {
	if c == nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil etcd client")
	}
	if err := CheckTTL(ttl); err != nil {
		return nil, err
	}
	secs := int64(ttl / time.Second)
	sent := time.Now()
	resp, err := c.Grant(ctx, secs)
	if err != nil {
		return nil, distsync.Errorf(distsync.ErrUnavailable, err, "grant session lease")
	}
	if resp.TTL != secs {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl)
		_, _ = c.Revoke(rctx, resp.ID)
		cancel()
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "asked for a %v session, the server granted %ds (its minimum TTL)", ttl, resp.TTL)
	}
	s, err := concurrency.NewSession(c, concurrency.WithLease(resp.ID), concurrency.WithTTL(int(secs)))
	if err != nil {
		return nil, distsync.Errorf(distsync.ErrUnavailable, err, "start session keep-alive")
	}
	// The lease lives at least a TTL past the grant request's sending.
	grantedHealth(s, sent.Add(ttl), ttl)
	return s, nil
}
