package zksync_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
)

// A job wrapped in a cluster-wide lock on ZooKeeper: whoever holds it runs
// the job, and the job's context ends if the lock is lost.
func Example() {
	ctx := context.Background()
	s, err := zksync.Dial(ctx, server.Servers(), zksync.WithSessionTimeout(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	mu, err := zksync.NewMutex(s, "jobs/nightly-report")
	if err != nil {
		log.Fatal(err)
	}
	lease, err := mu.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release(ctx)

	jobCtx, cancel := distsync.LeaseContext(ctx, lease)
	defer cancel()
	fmt.Println("running the job; lock held:", jobCtx.Err() == nil)
	fmt.Println("node:", mu.Path())
	// Output:
	// running the job; lock held: true
	// node: /distsync/jobs%2Fnightly-report
}

// At most two holders at once; a third TryAcquire would block.
func ExampleSemaphore() {
	ctx := context.Background()
	s, err := zksync.Dial(ctx, server.Servers())
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	sem, err := zksync.NewSemaphore(ctx, s, "example-pool", 2)
	if err != nil {
		log.Fatal(err)
	}
	a, _ := sem.Acquire(ctx)
	b, _ := sem.Acquire(ctx)
	_, err = sem.TryAcquire(ctx)
	fmt.Println(errors.Is(err, distsync.ErrWouldBlock))
	a.Release(ctx)
	b.Release(ctx)
	// Output: true
}

// A leader election: the first candidate leads, proclaims a new value and
// resigns, and the second takes over. Leader reports who leads; terms
// (czxids) are left out of the output because they depend on the server.
func ExampleElection() {
	ctx := context.Background()
	s, err := zksync.Dial(ctx, server.Servers())
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	e, err := zksync.NewElection(s, "example-election")
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
