package distsynctest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/internal/redisq"
	"github.com/go-zookeeper/zk"
	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// injectTimeout bounds each loss injection and state read: a server that
// does not answer within it fails the test instead of hanging it.
const injectTimeout = 20 * time.Second

// The Memory implementation's hooks, which Expire, DeleteHolder and
// Entries call on its values.
type (
	memoryExpirer interface{ expireSession() }
	memoryDeleter interface{ deleteHolder() error }
	memoryLister  interface{ entries(name string) []string }
)

// Expire ends the backend session underneath s from outside, as an expiry
// would. On etcd the session's lease is revoked. On Redis every entry of s
// expires unrenewed. On ZooKeeper the server closes the session. On
// [Memory] the session ends. Expire returns once the backend has ended it;
// every lease of s then ends with an error wrapping distsync.ErrLost. Its
// LostReason is LossSessionEnded on etcd and Memory. It is LossDisconnected
// on ZooKeeper, whose client sees its connection dropped first, and
// LossRenewal on Redis, whose sessions are only the leases' renewals.
// The Session itself goes on: its next acquisition works.
//
// s is a Session of etcdsync, redissync or zksync, or of [Memory]. A
// zksync Session must be dialed to a kit server's [ZooKeeperServer.Addr],
// whose proxy learns the session's password. Expire fails t for any other
// Session, or when the server does not answer within 20 s.
func Expire(t testing.TB, s distsync.Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), injectTimeout)
	defer cancel()
	var err error
	switch {
	case etcdq.Of(s) != nil:
		es := etcdq.Of(s)
		var id clientv3.LeaseID
		if id, err = es.CurrentLease(ctx); err == nil {
			_, err = es.Client().Revoke(ctx, id)
		}
	case redisq.SessionOf(s) != nil:
		err = redisq.Expire(ctx, s)
	default:
		switch s := s.(type) {
		case *zksync.Session:
			err = expireZooKeeper(ctx, s.SessionID())
		case memoryExpirer:
			s.expireSession()
		default:
			t.Fatalf("distsynctest.Expire: %T is not a Session of etcdsync, redissync, zksync or Memory", s)
		}
	}
	if err != nil {
		t.Fatalf("distsynctest.Expire: %v", err)
	}
}

// DeleteHolder deletes the backend state of l — its key, sorted-set member
// or node — from outside, as an operator's hand would, without waking
// anyone (the next waiter learns of it as it would of any deletion). l
// then ends with an error wrapping distsync.ErrLost, whose LostReason is
// LossDeleted, as soon as its holder notices: at once on etcd, ZooKeeper
// and Memory, at its next renewal (within a third of its TTL) on Redis.
//
// l is a lease of etcdsync, redissync or zksync primitives, or of
// [Memory]. A zksync lease's Session must be dialed as [Expire] says. DeleteHolder fails t otherwise, or when the server does not answer
// within 20 s.
func DeleteHolder(t testing.TB, l distsync.Lease) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), injectTimeout)
	defer cancel()
	var err error
	switch {
	case etcdq.LeaseOf(l) != nil:
		el := etcdq.LeaseOf(l)
		_, err = el.Session().Client().Delete(ctx, el.Key())
	case redisq.LeaseOf(l) != nil:
		rl := redisq.LeaseOf(l)
		c, ok := rl.Session().Client().(redis.Cmdable)
		if !ok {
			t.Fatalf("distsynctest.DeleteHolder: the Redis client %T runs no plain commands", rl.Session().Client())
		}
		err = redisq.DeleteMember(ctx, c, l)
	default:
		switch l := l.(type) {
		case zkLease:
			err = withZooKeeper(ctx, l.SessionID(), func(c *zk.Conn) error {
				return c.Delete(l.Path(), -1)
			})
		case memoryDeleter:
			err = l.deleteHolder()
		default:
			t.Fatalf("distsynctest.DeleteHolder: %T is not a lease of etcdsync, redissync, zksync or Memory", l)
		}
	}
	if err != nil {
		t.Fatalf("distsynctest.DeleteHolder: %v", err)
	}
}

// zkLease is what every zksync lease and leadership has.
type zkLease interface {
	Path() string
	SessionID() int64
}

// Entries lists the raw backend entries of name — the keys, sorted-set
// members or nodes of its holders, waiters and candidates, of whichever
// primitive kind — as the server stores them, read through s's connection
// and under s's prefix. It is empty once nothing of name is left: a test
// checks with it that a cancelled or failed call, a Release or a Close left
// nothing behind. s is a Session as for [Expire] (any zksync Session will
// do); Entries fails t otherwise, or when the server does not answer
// within 20 s.
func Entries(t testing.TB, s distsync.Session, name string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), injectTimeout)
	defer cancel()
	var (
		out []string
		err error
	)
	switch {
	case etcdq.Of(s) != nil:
		out, err = etcdq.Of(s).Contenders(ctx, name)
	case redisq.SessionOf(s) != nil:
		rs := redisq.SessionOf(s)
		out, err = redisq.MembersWith(ctx, rs.Client(), rs.Prefix(), name)
	default:
		switch s := s.(type) {
		case *zksync.Session:
			out, err = zkChildren(ctx, s, name)
		case memoryLister:
			out = s.entries(name)
		default:
			t.Fatalf("distsynctest.Entries: %T is not a Session of etcdsync, redissync, zksync or Memory", s)
		}
	}
	if err != nil {
		t.Fatalf("distsynctest.Entries: %v", err)
	}
	return out
}

// zkChildren lists the children of name's node under s's prefix, through
// s's connection, bounded by ctx.
func zkChildren(ctx context.Context, s *zksync.Session, name string) ([]string, error) {
	p, err := zksync.NodePath(s.Prefix(), name)
	if err != nil {
		return nil, err
	}
	var children []string
	err = zkCall(ctx, func() (err error) {
		children, _, err = s.Conn().Children(p)
		return err
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	return children, err
}
