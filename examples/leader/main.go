// Leader shows a service that does its work only while it leads, with
// distsync.Run on the etcd Election, on an etcd member it starts itself, so
// that it runs with no setup:
//
//	go run ./examples/leader
//
// Three replicas of the service campaign in one election; the leader works
// (here: ticks) and the others wait. Then two things happen to the leader:
// its session lease is revoked from outside (as etcd does when a leader
// crashes or is cut off for longer than its TTL), and later a leader is
// shut down. Each time its work stops at once, and the next replica takes
// over. The output looks like:
//
//	replica 1 leads (term 2)
//	replica 1 works: tick 1
//	replica 1 works: tick 2
//	replica 1 works: tick 3
//	operator: revoking replica 1's session lease
//	replica 2 leads (term 3)
//	replica 1 no longer leads
//	replica 1 stops working: distsync: lease lost: "leader-demo": key "leader-demo/37e4a21908cb3e03_a447b306761d030c" was deleted with session lease 37e4a21908cb3e03
//	replica 2 works: tick 1
//	replica 2 works: tick 2
//	replica 2 works: tick 3
//	operator: shutting replica 2 down
//	replica 2 stops working: context canceled
//	replica 2 no longer leads
//	replica 3 leads (term 4)
//	replica 3 works: tick 1
//	replica 3 works: tick 2
//	replica 3 works: tick 3
//	operator: shutting everyone down
//	replica 3 stops working: context canceled
//	replica 3 no longer leads
//
// After the loss, replica 1 is told at once ("no longer leads") while its
// work is still stopping; after a shutdown, "no longer leads" comes once
// the work stopped and leadership was released. Replica 1 campaigned again
// after its loss, behind the others, so replica 3 leads after replica 2.
// The terms are etcd revisions: each leader's is higher than every earlier
// one's, so a resource the leader writes to can refuse a deposed leader.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/election"
	"github.com/distsync/distsync/etcdsync"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

const (
	electionName = "leader-demo"
	replicas     = 3
	// ttl is the session TTL: a crashed leader is replaced about this
	// long after it stopped renewing its session.
	ttl = 5 * time.Second
	// tick is the period of the leader's work; each leader ticks a few
	// times before the next event.
	tick  = 50 * time.Millisecond
	ticks = 3
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "leader:", err)
		os.Exit(1)
	}
}

// run is the whole example, writing its report to w.
func run(w io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A real service connects to its etcd cluster with clientv3.New. The
	// example starts a member of its own instead.
	etcd, err := distsynctest.StartEtcd()
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: the replicas' clients are closed
	// by then, and the server has no open streams to wait for.
	defer etcd.Close()
	endpoints := etcd.Endpoints()

	out := &lineWriter{w: w}
	events := make(chan event, 100)
	var rs []*replica
	defer func() {
		for _, r := range rs {
			r.stop()
		}
	}()
	for id := 1; id <= replicas; id++ {
		r, err := startReplica(ctx, id, endpoints, out, events)
		if err != nil {
			return err
		}
		rs = append(rs, r)
	}

	// The leader works; then its session lease is revoked.
	leader, err := waitTicks(ctx, events, 0)
	if err != nil {
		return err
	}
	r := rs[leader-1]
	out.printf("operator: revoking replica %d's session lease\n", leader)
	if err := r.revoke(ctx); err != nil {
		return err
	}

	// The next leader works; then it is shut down, resigning on its way out.
	if leader, err = waitTicks(ctx, events, leader); err != nil {
		return err
	}
	out.printf("operator: shutting replica %d down\n", leader)
	if err := rs[leader-1].stop(); err != nil {
		return err
	}

	if _, err = waitTicks(ctx, events, leader); err != nil {
		return err
	}
	out.printf("operator: shutting everyone down\n")
	var errs []error
	for _, r := range rs {
		errs = append(errs, r.stop())
	}
	return errors.Join(errs...)
}

// An event is what a replica's work reports to the operator: a tick of the
// leader with the given id.
type event struct{ id, tick int }

// waitTicks waits until a leader other than prev has ticked `ticks` times,
// and returns its id.
func waitTicks(ctx context.Context, events <-chan event, prev int) (int, error) {
	for {
		select {
		case ev := <-events:
			if ev.id != prev && ev.tick == ticks {
				return ev.id, nil
			}
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for a new leader: %w", ctx.Err())
		}
	}
}

// A replica is one instance of the service, with a client and a Session of
// its own, as a separate process would have.
type replica struct {
	client  *clientv3.Client
	session *etcdsync.Session
	cancel  context.CancelFunc
	done    chan error

	mu  sync.Mutex
	key string // the etcd key of the leadership held, if any

	once sync.Once
	err  error
}

// revoke revokes the etcd lease that the replica's leadership key is bound
// to, as etcd does when the replica stops renewing it. An operator finds
// the lease from the key.
func (r *replica) revoke(ctx context.Context) error {
	r.mu.Lock()
	key := r.key
	r.mu.Unlock()
	resp, err := r.client.Get(ctx, key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) != 1 {
		return fmt.Errorf("leadership key %q is gone", key)
	}
	_, err = r.client.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	return err
}

func startReplica(ctx context.Context, id int, endpoints []string, out *lineWriter, events chan<- event) (*replica, error) {
	client, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	s, err := etcdsync.NewSession(ctx, client, etcdsync.WithTTL(ttl))
	if err != nil {
		client.Close()
		return nil, err
	}
	e, err := s.Election(electionName)
	if err != nil {
		s.Close()
		client.Close()
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &replica{client: client, session: s, cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- distsync.Run(rctx, e, fmt.Appendf(nil, "replica-%d", id), distsync.Callbacks{
			OnStartedLeading: func(ctx context.Context, l distsync.Leadership) {
				r.mu.Lock()
				r.key = l.(*election.Leadership).Key()
				r.mu.Unlock()
				out.printf("replica %d leads (term %d)\n", id, l.Token())
				work(ctx, id, out, events)
				out.printf("replica %d stops working: %v\n", id, context.Cause(ctx))
			},
			OnStoppedLeading: func() { out.printf("replica %d no longer leads\n", id) },
		})
	}()
	return r, nil
}

// work is the leader's work: it ticks until ctx is cancelled, and stops at
// once when it is. The tick checks ctx before acting, since a select picks
// at random among ready cases.
func work(ctx context.Context, id int, out *lineWriter, events chan<- event) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ctx.Err() != nil {
			return
		}
		out.printf("replica %d works: tick %d\n", id, n)
		select {
		case events <- event{id, n}:
		case <-ctx.Done():
			return
		}
	}
}

// stop shuts the replica down: Run resigns after the work returned, then
// the Session and the client are closed. It is idempotent.
func (r *replica) stop() error {
	r.once.Do(func() {
		r.cancel()
		r.err = errors.Join(<-r.done, r.session.Close())
		r.client.Close()
	})
	return r.err
}

// lineWriter serializes the replicas' lines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (lw *lineWriter) printf(format string, args ...any) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	fmt.Fprintf(lw.w, format, args...)
}
