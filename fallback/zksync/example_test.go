package zksync_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/go-zookeeper/zk"
)

// A job wrapped in a cluster-wide lock on ZooKeeper: whoever holds it runs
// the job, and the job's context ends if the lock is lost.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := zksync.Dial(ctx, server.Servers(), zksync.WithTTL(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	mu, err := s.Mutex("jobs/nightly-report")
	if err != nil {
		log.Fatal(err)
	}
	lease, err := mu.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release(ctx)

	jobCtx, stop := distsync.LeaseContext(ctx, lease)
	defer stop()
	fmt.Println("running the job; lock held:", jobCtx.Err() == nil)
	fmt.Println("node:", mu.(*zksync.Mutex).Path())
	// Output:
	// running the job; lock held: true
	// node: /distsync/jobs%2Fnightly-report
}

// A Session on the caller's own go-zookeeper connection: the caller adds
// its credentials and closes the connection after the Session.
func ExampleNewSession() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := zk.Connect(server.Servers(), 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	if err := conn.AddAuth("digest", []byte("app:secret")); err != nil {
		log.Fatal(err)
	}
	s, err := zksync.NewSession(ctx, conn,
		zksync.WithPrefix("/example-app"), zksync.WithACL(zk.DigestACL(zk.PermAll, "app", "secret")))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	fmt.Println("session timeout:", s.TTL())

	m, err := s.Mutex("example-own-conn")
	if err != nil {
		log.Fatal(err)
	}
	l, err := m.TryLock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("locked:", l.Err() == nil)
	_ = l.Release(ctx)
	// Output:
	// session timeout: 10s
	// locked: true
}

// At most five permits at once, taken one or several at a time; a request
// that does not fit would block.
func ExampleSemaphore() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := zksync.Dial(ctx, server.Servers())
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	sem, err := s.Semaphore(ctx, "example-pool", 5)
	if err != nil {
		log.Fatal(err)
	}
	three, err := sem.AcquireN(ctx, 3)
	if err != nil {
		log.Fatal(err)
	}
	_, err = sem.TryAcquireN(ctx, 3)
	fmt.Println("3 more would block:", errors.Is(err, distsync.ErrWouldBlock))
	two, err := sem.TryAcquireN(ctx, 2)
	fmt.Println("2 more fit:", err == nil)

	// Another client that disagrees on the limit is told so.
	_, err = s.Semaphore(ctx, "example-pool", 4)
	fmt.Println("limit 4 while in use with 5:", errors.Is(err, distsync.ErrLimitMismatch))

	_ = three.Release(ctx)
	_ = two.Release(ctx)
	// Output:
	// 3 more would block: true
	// 2 more fit: true
	// limit 4 while in use with 5: true
}

// A leader election: the first candidate leads, proclaims a new value and
// resigns, and the second takes over. Leader reports who leads; terms
// (czxids) are left out of the output because they depend on the server.
func ExampleElection() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := zksync.Dial(ctx, server.Servers())
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	e, err := s.Election("example-election")
	if err != nil {
		log.Fatal(err)
	}

	first, err := e.Campaign(ctx, []byte("node-1"))
	if err != nil {
		log.Fatal(err)
	}
	second := make(chan distsync.Leadership)
	go func() {
		l, err := e.Campaign(ctx, []byte("node-2"))
		if err != nil {
			log.Fatal(err)
		}
		second <- l
	}()

	if err := first.Proclaim(ctx, []byte("node-1 (busy)")); err != nil {
		log.Fatal(err)
	}
	l, _ := e.Leader(ctx)
	fmt.Printf("leader: %s\n", l.Value)

	_ = first.Release(ctx) // resign: the next candidate leads
	next := <-second
	l, _ = e.Leader(ctx)
	fmt.Printf("leader: %s, later term: %t\n", l.Value, next.Token() > first.Token())
	_ = next.Release(ctx)
	_, err = e.Leader(ctx)
	fmt.Println(errors.Is(err, distsync.ErrNoLeader))
	// Output:
	// leader: node-1 (busy)
	// leader: node-2, later term: true
	// true
}

// An operator reads who holds a stuck lock and releases it by force: the
// holder's lease ends with LossForceReleased, and the lock is free again.
func ExampleSession_ForceRelease() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	worker, err := zksync.Dial(ctx, server.Servers(), zksync.WithIdentity("worker-1"))
	if err != nil {
		log.Fatal(err)
	}
	defer worker.Close()
	mu, err := worker.Mutex("jobs/stuck")
	if err != nil {
		log.Fatal(err)
	}
	lease, err := mu.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}

	operator, err := zksync.Dial(ctx, server.Servers())
	if err != nil {
		log.Fatal(err)
	}
	defer operator.Close()
	st, err := operator.Inspect(ctx, "jobs/stuck")
	if err != nil {
		log.Fatal(err)
	}
	h := st.Holders[0]
	fmt.Println("held by", h.Identity, h.Mode, "waiters:", len(st.Waiters))
	if err := operator.ForceRelease(ctx, "jobs/stuck", h.Token); err != nil {
		log.Fatal(err)
	}
	<-lease.Done()
	fmt.Println("worker's lease:", distsync.LostReason(lease.Err()))
	_ = lease.Release(ctx)
	// Output:
	// held by worker-1 exclusive waiters: 0
	// worker's lease: force_released
}
