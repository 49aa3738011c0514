package rwmutex_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/distsync/distsync/etcdsync"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A configuration that many services read and one rewrites: readers share
// the lock, the writer waits for the readers before it, and readers that
// come after a waiting writer wait for it (so a rewrite is never starved).
func Example() {
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
	cfg, err := session.RWMutex("config/routes")
	if err != nil {
		log.Fatal(err)
	}

	r1, _ := cfg.RLock(ctx) // two readers at once
	r2, _ := cfg.RLock(ctx)
	_, err = cfg.TryLock(ctx)
	fmt.Println("rewrite while read:", err)

	rewritten := make(chan struct{})
	go func() {
		w, err := cfg.Lock(ctx) // waits for r1 and r2
		if err != nil {
			log.Fatal(err)
		}
		client.Put(ctx, "data/config/routes", "v2")
		w.Release(ctx)
		close(rewritten)
	}()
	for queued := int64(0); queued == 0; { // wait until the writer is queued
		resp, _ := client.Get(ctx, "config/routes/w", clientv3.WithPrefix(), clientv3.WithCountOnly())
		queued = resp.Count
	}
	_, err = cfg.TryRLock(ctx)
	fmt.Println("new reader behind the writer:", err)
	r1.Release(ctx)
	r2.Release(ctx)
	<-rewritten

	r3, _ := cfg.RLock(ctx)
	resp, _ := client.Get(ctx, "data/config/routes")
	fmt.Printf("reader sees %s\n", resp.Kvs[0].Value)
	r3.Release(ctx)
	// Output:
	// rewrite while read: distsync: would block: "config/routes" is held
	// new reader behind the writer: distsync: would block: "config/routes" is held
	// reader sees v2
}
