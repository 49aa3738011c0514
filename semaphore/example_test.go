package semaphore_test

import (
	"context"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distsync/distsync/etcdsync"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A worker pool spread over processes: each worker (here a goroutine with a
// client and Session of its own, as a separate process would have) runs a
// job only while it holds one of the semaphore's 2 permits, so at most 2
// jobs run at once across all of them.
func Example_workerPool() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var running, most atomic.Int64
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			client, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
			if err != nil {
				log.Fatal(err)
			}
			defer client.Close()
			session, err := etcdsync.NewSession(ctx, client, etcdsync.WithTTL(5*time.Second))
			if err != nil {
				log.Fatal(err)
			}
			defer session.Close()
			jobs, err := session.Semaphore(ctx, "example/render-jobs", 2)
			if err != nil {
				log.Fatal(err)
			}

			permit, err := jobs.Acquire(ctx)
			if err != nil {
				log.Fatal(err)
			}
			defer permit.Release(context.Background())
			n := running.Add(1) // the job
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(20 * time.Millisecond)
			running.Add(-1)
		})
	}
	wg.Wait()
	fmt.Println("never more than 2 jobs at once:", most.Load() <= 2)
	// Output: never more than 2 jobs at once: true
}

// While a semaphore is in use, opening it with a limit other than the
// stored one fails, rather than admitting more holders than the others
// allow. Once idle, it stores nothing, and the next user's limit holds.
func Example_limitMismatch() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	session, err := etcdsync.NewSession(ctx, client, etcdsync.WithTTL(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer session.Close()

	uploads, err := session.Semaphore(ctx, "example/uploads", 3)
	if err != nil {
		log.Fatal(err)
	}
	permit, err := uploads.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	_, err = session.Semaphore(ctx, "example/uploads", 10)
	fmt.Println(err)
	permit.Release(ctx)
	_, err = session.Semaphore(ctx, "example/uploads", 10)
	fmt.Println("once idle:", err)
	// Output:
	// distsync: semaphore limit mismatch: opened with limit 10, but semaphore "example/uploads" stores limit 3
	// once idle: <nil>
}
