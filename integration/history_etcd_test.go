package integration

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/internal/etcdq"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// txnRegister is the counter kept in etcd itself, written by a Txn
// conditional on the lease's IsOwner: the way the mutex package documents
// to make a write conditional on still holding the lock. Each write also
// puts a marker key, so that a Txn whose outcome the client did not learn
// (a member stopped under it) is resolved after the run, and so that the
// order of applied writes is their markers' revisions.
type txnRegister struct {
	opLog
	admin   *clientv3.Client
	key     string
	markers string
	now     func() int64
	n       atomic.Int64
}

func newTxnRegister(admin *clientv3.Client, name string, now func() int64) *txnRegister {
	return &txnRegister{admin: admin, key: "history-store/" + name + "/counter", markers: "history-store/" + name + "/op/", now: now}
}

func (r *txnRegister) label() string { return "etcd-txn" }

func (r *txnRegister) read(ctx context.Context, c *histClient, _ distsync.Lease) (int, bool) {
	resp, err := c.kv.Get(ctx, r.key)
	if err != nil {
		return 0, false
	}
	if len(resp.Kvs) == 0 {
		return 0, true
	}
	v, err := strconv.Atoi(string(resp.Kvs[0].Value))
	return v, err == nil
}

// owner is what the etcd leases and leaderships offer to fence a Txn.
type owner interface{ IsOwner() clientv3.Cmp }

func (r *txnRegister) write(ctx context.Context, c *histClient, l distsync.Lease, op *histOp) {
	op.marker = fmt.Sprintf("%s%010d", r.markers, r.n.Add(1))
	resp, err := c.kv.Txn(ctx).If(l.(owner).IsOwner()).Then(
		clientv3.OpPut(r.key, strconv.Itoa(op.wrote)),
		clientv3.OpPut(op.marker, fmt.Sprintf("%d %d %d", op.token, op.read, op.wrote)),
	).Commit()
	switch {
	case err != nil:
		op.outcome = unknown
	case resp.Succeeded:
		op.outcome = accepted
	default:
		op.outcome = rejected
	}
}

func (r *txnRegister) result(ctx context.Context) ([]*histOp, []access, int, error) {
	ops := r.recorded()
	for _, op := range ops {
		if op.outcome != unknown {
			continue
		}
		resp, err := r.admin.Get(ctx, op.marker)
		if err != nil {
			return nil, nil, 0, err
		}
		op.outcome = rejected
		if len(resp.Kvs) > 0 {
			// Applied at some point before now: widen its interval.
			op.outcome, op.ret = accepted, r.now()
		}
	}
	resp, err := r.admin.Get(ctx, r.markers, clientv3.WithPrefix())
	if err != nil {
		return nil, nil, 0, err
	}
	kvs := resp.Kvs
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].ModRevision < kvs[j].ModRevision })
	accesses := make([]access, 0, len(kvs))
	for _, kv := range kvs {
		var a access
		if _, err := fmt.Sscanf(string(kv.Value), "%d %d %d", &a.token, &a.read, &a.wrote); err != nil {
			return nil, nil, 0, fmt.Errorf("marker %s: %q: %v", kv.Key, kv.Value, err)
		}
		a.write = true
		accesses = append(accesses, a)
	}
	final := 0
	if resp, err := r.admin.Get(ctx, r.key); err != nil {
		return nil, nil, 0, err
	} else if len(resp.Kvs) > 0 {
		if final, err = strconv.Atoi(string(resp.Kvs[0].Value)); err != nil {
			return nil, nil, 0, err
		}
	}
	return ops, accesses, final, nil
}

// etcdHistPrim opens one etcd primitive on a Session of its own on a
// client.
type etcdHistPrim func(ctx context.Context, c *clientv3.Client, name string, ttl time.Duration) (acquire func(context.Context) (distsync.Lease, error), closer func() error, session func() *etcdq.Session, err error)

// etcdHistOpen opens a Session of ttl on c and the primitive open returns
// on it.
func etcdHistOpen(open func(s *etcdsync.Session, name string) (func(context.Context) (distsync.Lease, error), error)) etcdHistPrim {
	return func(ctx context.Context, c *clientv3.Client, name string, ttl time.Duration) (func(context.Context) (distsync.Lease, error), func() error, func() *etcdq.Session, error) {
		s, err := etcdsync.NewSession(ctx, c, etcdsync.WithTTL(ttl))
		if err != nil {
			return nil, nil, nil, err
		}
		acquire, err := open(s, name)
		if err != nil {
			_ = s.Close()
			return nil, nil, nil, err
		}
		return acquire, s.Close, func() *etcdq.Session { return etcdq.Of(s) }, nil
	}
}

var etcdHistPrims = []struct {
	prim string
	open etcdHistPrim
}{
	{"mutex", etcdHistOpen(func(s *etcdsync.Session, name string) (func(context.Context) (distsync.Lease, error), error) {
		m, err := s.Mutex(name)
		if err != nil {
			return nil, err
		}
		return m.Lock, nil
	})},
	{"semaphore", etcdHistOpen(func(s *etcdsync.Session, name string) (func(context.Context) (distsync.Lease, error), error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sem, err := s.Semaphore(ctx, name, 1)
		if err != nil {
			return nil, err
		}
		return sem.Acquire, nil
	})},
	{"rwmutex", etcdHistOpen(func(s *etcdsync.Session, name string) (func(context.Context) (distsync.Lease, error), error) {
		rw, err := s.RWMutex(name)
		if err != nil {
			return nil, err
		}
		return rw.Lock, nil
	})},
	{"election", etcdHistOpen(func(s *etcdsync.Session, name string) (func(context.Context) (distsync.Lease, error), error) {
		e, err := s.Election(name)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) (distsync.Lease, error) {
			l, err := e.Campaign(ctx, []byte(name))
			if err != nil {
				return nil, err
			}
			return l, nil
		}, nil
	})},
}

// TestHistoryEtcd runs the fenced-history workload on every etcd primitive
// at once, 8 clients each (one session per client and primitive, each
// client on one member of a 3-member cluster), while the nemesis pauses
// holders past their TTL (the Session's renewals stop as in a process
// pause: Orphan), revokes a holder's Session lease, stops and restarts the leader
// and a follower, and blackholes a holder's member.
func TestHistoryEtcd(t *testing.T) {
	soak := soakDuration(t)
	cl := distsynctest.EtcdCluster(t, 3)
	const (
		clients = 8
		ttl     = 2 * time.Second
	)
	kvs := make([]*clientv3.Client, clients)
	for i := range kvs {
		kvs[i] = cl.MemberClient(t, i%cl.Size())
	}
	admin := cl.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	run := &stopper{cancel: cancel}
	start := time.Now()
	var (
		ws     []*histWorkload
		faults faultCounts
	)
	// The histories are checked however the run ends, so that a failed
	// soak still reports what it saw.
	defer func() {
		run.stop()
		checkHistories(t, "etcd, 3-member cluster", ws, &faults, time.Since(start),
			fmt.Sprintf("%d clients per primitive, session TTL %v, pauses %v", clients, ttl, ttl+2*time.Second),
			"a paused holder's renewals are stopped (etcdq Orphan): its leases are lost at their renewal deadline, the server expires the lease after the TTL, and the Session's next call grants a new one",
			"etcd-txn: the same increments written with Txn(If(IsOwner)); failed Txns resolved by their marker keys")
	}()
	for _, p := range etcdHistPrims {
		name := "history-" + p.prim
		w := newHistWorkload(p.prim, &memRegister{fenced: true}, &memRegister{})
		w.regs = append(w.regs, newTxnRegister(admin, name, w.now))
		ws = append(ws, w)
		run.wgs = append(run.wgs, w.run(ctx, clients, func(ctx context.Context, i int) (*histClient, error) {
			acquire, closer, session, err := p.open(ctx, kvs[i], name, ttl)
			if err != nil {
				return nil, err
			}
			return &histClient{
				acquire: acquire, close: closer, kv: kvs[i], member: i % cl.Size(), session: session,
				// The keep-alive stops and the lease expires on the server
				// after its TTL, as when the process is paused.
				freeze: func(distsync.Lease) func() { session().Orphan(); return func() {} },
			}, nil
		}))
	}

	deadline := time.Now().Add(soak)
	progress(t, ws, 10, "before the faults")
	for round := 0; ; round++ {
		for _, w := range ws {
			w.pauseHolder(t, ttl+2*time.Second, 5*time.Second)
			faults.add("pause-holder")
		}
		progress(t, ws, 5, "after the pauses")

		w := ws[round%len(ws)]
		g := &grab{targeted: true, within: 5 * time.Second}
		h := w.take(t, g, 30*time.Second)
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		id, err := h.c.session().CurrentLease(rctx)
		if err == nil {
			_, err = admin.Revoke(rctx, id)
		}
		rcancel()
		close(g.release)
		if err != nil {
			t.Fatalf("revoke the %s holder's session: %v", w.prim, err)
		}
		faults.add("revoke-session")
		progress(t, ws, 5, "after the revoke")

		leader := cl.WaitLeader(t)
		cl.Stop(t, leader)
		faults.add("stop-leader")
		progress(t, ws, 5, "with the leader stopped")
		cl.Restart(t, leader)
		progress(t, ws, 5, "after the leader restarted")

		follower := (cl.WaitLeader(t) + 1 + round%2) % cl.Size()
		cl.Stop(t, follower)
		faults.add("stop-follower")
		progress(t, ws, 5, "with a follower stopped")
		cl.Restart(t, follower)
		progress(t, ws, 5, "after the follower restarted")

		w = ws[(round+1)%len(ws)]
		g = &grab{targeted: true, within: 2 * ttl}
		h = w.take(t, g, 30*time.Second)
		cl.Blackhole(t, h.c.member)
		close(g.release)
		faults.add("blackhole-holder-member")
		progress(t, ws, 5, "with the holder's member blackholed")
		cl.Unblackhole(t, h.c.member)
		cl.WaitLeader(t)
		progress(t, ws, 5, "after the unblackhole")

		calm(soak, deadline)
		if time.Now().After(deadline) {
			break
		}
	}
}
