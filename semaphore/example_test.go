package semaphore_test

import (
	"context"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distsync/distsync/semaphore"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A worker pool spread over processes: each worker (here a goroutine with a
// client and session of its own, as a separate process would have) runs a
// job only while it holds one of the semaphore's 2 permits, so at most 2
// jobs run at once across all of them.
func Example_workerPool() {
	ctx := context.Background()
	var running, most atomic.Int64
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
			if err != nil {
				log.Fatal(err)
			}
			defer client.Close()
			jobs, err := semaphore.NewWithClient(ctx, client, "example/render-jobs", 2)
			if err != nil {
				log.Fatal(err)
			}
			defer jobs.Close()

			permit, err := jobs.Acquire(ctx)
			if err != nil {
				log.Fatal(err)
			}
			defer permit.Release(ctx)
			n := running.Add(1) // the job
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(20 * time.Millisecond)
			running.Add(-1)
		}()
	}
	wg.Wait()
	fmt.Println("never more than 2 jobs at once:", most.Load() <= 2)
	// Output: never more than 2 jobs at once: true
}

// Opening a semaphore with a limit other than the stored one fails, rather
// than admitting more holders than the others allow.
func ExampleNewWithClient_limitMismatch() {
	ctx := context.Background()
	client, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	a, err := semaphore.NewWithClient(ctx, client, "example/uploads", 3)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	_, err = semaphore.NewWithClient(ctx, client, "example/uploads", 10)
	fmt.Println(err)
	// Output: distsync: semaphore limit mismatch: opened with limit 10, but "example%2Fuploads%limit" stores limit 3
}
