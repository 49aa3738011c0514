package main

import (
	"context"
	"fmt"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	rsgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/go-zookeeper/zk"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/distsync/distsync/internal/redisq"
)

// A locker is one waiter's lock: lock blocks until held and returns the
// function that releases it. A locker is used by one goroutine at a time.
type locker func(ctx context.Context) (unlock func(context.Context) error, err error)

// A lib is one lock implementation compared.
type lib struct {
	backend string // "etcd", "Redis", "ZooKeeper"
	name    string
	ours    bool
	// open returns n lockers on one lock name, each as a separate
	// process would have it: a session of its own where the library has
	// sessions. The clients (connections) under them are counted into
	// r.reqs; there are min(n, maxClients) of them, shared round-robin, so
	// that 512 waiters do not need 512 gRPC connections.
	open func(r *run, name string, n int) ([]locker, error)
	// queued returns how many keys (holders and waiters) the lock name
	// has, for libraries that queue; nil for those that poll.
	queued func(ctx context.Context, r *run, name string) (int, error)
	// note says how the library was configured, for the report.
	note string
}

// maxClients bounds the connections one library opens in one scenario.
const maxClients = 8

// lockTTL is the TTL (lease, session timeout, key validity) of every lock
// in the benchmarks. Nothing here waits for an expiry but the crash
// failover, which sets its own.
const lockTTL = 10 * time.Second

var libs = []lib{
	{backend: "etcd", name: "distsync", ours: true, open: openEtcdDistsync, queued: etcdQueued},
	{backend: "etcd", name: "concurrency.Mutex", open: openEtcdConcurrency, queued: etcdQueued,
		note: "etcd client/v3/concurrency, a session per waiter"},
	{backend: "Redis", name: "distsync", ours: true, open: openRedisDistsync, queued: redisQueued},
	{backend: "Redis", name: "redsync", open: openRedsync,
		note: "defaults: 32 tries, 50–250 ms apart, then ErrFailed"},
	{backend: "Redis", name: "redislock", open: openRedislock,
		note: "LinearBackoff(10ms) (its default does not retry)"},
	{backend: "Redis", name: "rueidislock", open: openRueidislock,
		note: "defaults (3 keys, majority 2, woken by client-side-cache invalidation); one Locker per client, shared by the waiters on it"},
	{backend: "ZooKeeper", name: "distsync", ours: true, open: openZKDistsync, queued: zkQueued},
	{backend: "ZooKeeper", name: "zk.Lock", open: openZKLock, queued: zkQueued,
		note: "go-zookeeper zk.Lock, a connection per waiter"},
}

// etcdClients opens min(n, maxClients) counted clients of the member.
func (r *run) etcdClients(n int) ([]*clientv3.Client, error) {
	clis := make([]*clientv3.Client, min(n, maxClients))
	for i := range clis {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   r.env.etcd.Endpoints(),
			DialTimeout: 5 * time.Second,
			Logger:      zap.NewNop(),
			DialOptions: r.reqs.grpcOptions(),
		})
		if err != nil {
			return nil, err
		}
		r.onClose(func() { cli.Close() })
		clis[i] = cli
	}
	return clis, nil
}

// acquirer is what a distsync primitive's Lock or Acquire is.
type acquirer func(ctx context.Context) (distsync.Lease, error)

// openEach makes n lockers from acquire functions, one per waiter, that
// open makes for waiter i.
func openEach(n int, open func(i int) (acquirer, error)) ([]locker, error) {
	ls := make([]locker, n)
	for i := range ls {
		acquire, err := open(i)
		if err != nil {
			return nil, err
		}
		ls[i] = func(ctx context.Context) (func(context.Context) error, error) {
			l, err := acquire(ctx)
			if err != nil {
				return nil, err
			}
			return l.Release, nil
		}
	}
	return ls, nil
}

func openEtcdDistsync(r *run, name string, n int) ([]locker, error) {
	return openEtcdDistsyncWith(r, name, n)
}

func openEtcdDistsyncWith(r *run, name string, n int, opts ...etcdsync.Option) ([]locker, error) {
	clis, err := r.etcdClients(n)
	if err != nil {
		return nil, err
	}
	return openEach(n, func(i int) (acquirer, error) {
		s, err := etcdsync.NewSession(r.ctx, clis[i%len(clis)], append([]etcdsync.Option{etcdsync.WithTTL(lockTTL)}, opts...)...)
		if err != nil {
			return nil, err
		}
		r.onClose(func() { _ = s.Close() })
		m, err := s.Mutex(name)
		if err != nil {
			return nil, err
		}
		return m.Lock, nil
	})
}

func openEtcdConcurrency(r *run, name string, n int) ([]locker, error) {
	clis, err := r.etcdClients(n)
	if err != nil {
		return nil, err
	}
	ls := make([]locker, n)
	for i := range ls {
		s, err := concurrency.NewSession(clis[i%len(clis)], concurrency.WithTTL(int(lockTTL/time.Second)))
		if err != nil {
			return nil, err
		}
		r.onClose(func() { _ = s.Close() })
		m := concurrency.NewMutex(s, name)
		ls[i] = func(ctx context.Context) (func(context.Context) error, error) {
			if err := m.Lock(ctx); err != nil {
				return nil, err
			}
			return m.Unlock, nil
		}
	}
	return ls, nil
}

// etcdQueued counts the keys under name/: both etcd libraries keep their
// keys there for the plain names the benchmarks use.
func etcdQueued(ctx context.Context, r *run, name string) (int, error) {
	resp, err := r.env.etcdCli.Get(ctx, name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return int(resp.Count), nil
}

// redisClients opens min(n, maxClients) counted go-redis clients, each
// with its own connection pool.
func (r *run) redisClients(n int) []*goredis.Client {
	cs := make([]*goredis.Client, min(n, maxClients))
	for i := range cs {
		c := goredis.NewClient(&goredis.Options{Addr: r.env.redis.Addr(), ContextTimeoutEnabled: true})
		c.AddHook(redisHook{&r.reqs})
		r.onClose(func() { c.Close() })
		cs[i] = c
	}
	return cs
}

func openRedisDistsync(r *run, name string, n int) ([]locker, error) {
	return openRedisDistsyncWith(r, name, n)
}

func openRedisDistsyncWith(r *run, name string, n int, opts ...redissync.Option) ([]locker, error) {
	cs := r.redisClients(n)
	return openEach(n, func(i int) (acquirer, error) {
		s, err := redissync.NewSession(r.ctx, cs[i%len(cs)], append([]redissync.Option{redissync.WithTTL(lockTTL)}, opts...)...)
		if err != nil {
			return nil, err
		}
		r.onClose(func() { _ = s.Close() })
		m, err := s.Mutex(name)
		if err != nil {
			return nil, err
		}
		return m.Lock, nil
	})
}

// redisQueued counts distsync's Redis holders and waiters of name.
func redisQueued(ctx context.Context, r *run, name string) (int, error) {
	k := redisq.KeysFor(name)
	h, err := r.env.redisCli.ZCard(ctx, k.Holders).Result()
	if err != nil {
		return 0, err
	}
	q, err := r.env.redisCli.ZCard(ctx, k.Queue).Result()
	return int(h + q), err
}

func openRedsync(r *run, name string, n int) ([]locker, error) {
	cs := r.redisClients(n)
	ls := make([]locker, n)
	for i := range ls {
		mu := redsync.New(rsgoredis.NewPool(cs[i%len(cs)])).NewMutex(name, redsync.WithExpiry(lockTTL))
		ls[i] = func(ctx context.Context) (func(context.Context) error, error) {
			if err := mu.LockContext(ctx); err != nil {
				return nil, err
			}
			return func(ctx context.Context) error {
				_, err := mu.UnlockContext(ctx)
				return err
			}, nil
		}
	}
	return ls, nil
}

func openRedislock(r *run, name string, n int) ([]locker, error) {
	cs := r.redisClients(n)
	ls := make([]locker, n)
	opts := &redislock.Options{RetryStrategy: redislock.LinearBackoff(10 * time.Millisecond)}
	for i := range ls {
		lk := redislock.New(cs[i%len(cs)])
		ls[i] = func(ctx context.Context) (func(context.Context) error, error) {
			l, err := lk.Obtain(ctx, name, lockTTL, opts)
			if err != nil {
				return nil, err
			}
			return l.Release, nil
		}
	}
	return ls, nil
}

func openRueidislock(r *run, name string, n int) ([]locker, error) {
	lks := make([]rueidislock.Locker, min(n, maxClients))
	for i := range lks {
		lk, err := rueidislock.NewLocker(rueidislock.LockerOption{
			ClientOption: rueidis.ClientOption{InitAddress: []string{r.env.redis.Addr()}},
			ClientBuilder: func(o rueidis.ClientOption) (rueidis.Client, error) {
				c, err := rueidis.NewClient(o)
				if err != nil {
					return nil, err
				}
				return rueidisCounting{Client: c, c: &r.reqs}, nil
			},
			KeyValidity: lockTTL,
		})
		if err != nil {
			return nil, err
		}
		r.onClose(lk.Close)
		lks[i] = lk
	}
	ls := make([]locker, n)
	for i := range ls {
		lk := lks[i%len(lks)]
		ls[i] = func(ctx context.Context) (func(context.Context) error, error) {
			_, cancel, err := lk.WithContext(ctx, name)
			if err != nil {
				return nil, err
			}
			return func(context.Context) error { cancel(); return nil }, nil
		}
	}
	return ls, nil
}

// zkSession dials a counted distsync ZooKeeper session.
func (r *run) zkSession(opts ...zksync.Option) (*zksync.Session, error) {
	s, err := zksync.Dial(r.ctx, r.env.zk.Servers(), append([]zksync.Option{zksync.WithTTL(lockTTL),
		zksync.WithDialer(r.reqs.zkDialer())}, opts...)...)
	if err != nil {
		return nil, err
	}
	r.onClose(func() { _ = s.Close() })
	return s, nil
}

func openZKDistsync(r *run, name string, n int) ([]locker, error) {
	return openZKDistsyncWith(r, name, n)
}

func openZKDistsyncWith(r *run, name string, n int, opts ...zksync.Option) ([]locker, error) {
	return openEach(n, func(int) (acquirer, error) {
		s, err := r.zkSession(opts...)
		if err != nil {
			return nil, err
		}
		m, err := s.Mutex(name)
		if err != nil {
			return nil, err
		}
		return m.Lock, nil
	})
}

func openZKLock(r *run, name string, n int) ([]locker, error) {
	p, err := zksync.NodePath(zksync.DefaultPrefix, name)
	if err != nil {
		return nil, err
	}
	ls := make([]locker, n)
	for i := range ls {
		c, events, err := zk.Connect(r.env.zk.Servers(), lockTTL, zk.WithLogInfo(false), zk.WithLogger(quietZK{}), zk.WithDialer(r.reqs.zkDialer()))
		if err != nil {
			return nil, err
		}
		r.onClose(c.Close)
		// zk.Connect returns before the session exists; wait for it, as
		// distsync's Dial does, so that S5 times the queueing, not the
		// connecting.
		if err := zkHasSession(r.ctx, events); err != nil {
			return nil, err
		}
		l := zk.NewLock(c, p, zk.WorldACL(zk.PermAll))
		// zk.Lock takes no context: a stuck lock is caught by the
		// scenario's deadline, which abandons the run.
		ls[i] = func(context.Context) (func(context.Context) error, error) {
			if err := l.Lock(); err != nil {
				return nil, err
			}
			return func(context.Context) error { return l.Unlock() }, nil
		}
	}
	return ls, nil
}

// zkHasSession waits for a go-zookeeper connection's session.
func zkHasSession(ctx context.Context, events <-chan zk.Event) error {
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return nil // later events are dropped by go-zookeeper when unread
			}
		case <-ctx.Done():
			return fmt.Errorf("zk.Connect: no session: %w", ctx.Err())
		}
	}
}

// zkQueued counts the children of name's lock node: both ZooKeeper
// libraries create their sequential nodes there.
func zkQueued(ctx context.Context, r *run, name string) (int, error) {
	p, err := zksync.NodePath(zksync.DefaultPrefix, name)
	if err != nil {
		return 0, err
	}
	kids, _, err := r.env.zkConn.Children(p)
	if err == zk.ErrNoNode {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("children of %s: %w", p, err)
	}
	return len(kids), nil
}

// quietZK drops go-zookeeper's log lines.
type quietZK struct{}

func (quietZK) Printf(string, ...any) {}
