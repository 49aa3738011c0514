package etcdsync_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/mutex"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A Session on your own client opens the four primitives; Close revokes
// its lease and leaves the client open.
func Example() {
	client, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	session, err := etcdsync.NewSession(ctx, client, etcdsync.WithTTL(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer session.Close()

	mu, err := session.Mutex("jobs/nightly-report")
	if err != nil {
		log.Fatal(err)
	}
	lease, err := mu.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("held:", lease.Err() == nil)
	lease.Release(ctx)
	fmt.Println("released:", errors.Is(lease.Err(), distsync.ErrReleased))
	// Output:
	// held: true
	// released: true
}

// Dial makes the client too, and Close closes it.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	session, err := etcdsync.Dial(ctx, clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	e, err := session.Election("services/billing")
	if err != nil {
		log.Fatal(err)
	}
	_, err = e.Leader(ctx)
	fmt.Println("no leader yet:", errors.Is(err, distsync.ErrNoLeader))
	session.Close()
	_, err = e.Leader(ctx)
	fmt.Println("after Close:", errors.Is(err, distsync.ErrClosed))
	// Output:
	// no leader yet: true
	// after Close: true
}

// When the Session's lease ends (here an operator revokes it), the lock is
// lost, and the same Mutex locks again under a new lease.
func ExampleSession_lostLease() {
	client, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	session, err := etcdsync.NewSession(ctx, client, etcdsync.WithTTL(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer session.Close()
	mu, _ := session.Mutex("example-lost-lease")

	lease, err := mu.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// The operator's view: the lock's key names the lease it is on.
	key := lease.(*mutex.Lease).Key()
	resp, err := client.Get(ctx, key)
	if err != nil {
		log.Fatal(err)
	}
	client.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	<-lease.Done()
	fmt.Println("lost:", errors.Is(lease.Err(), distsync.ErrLost))

	again, err := mu.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("locked again:", again.Err() == nil)
	again.Release(ctx)
	// Output:
	// lost: true
	// locked again: true
}

// WithPrefix puts every key under a root prefix, and WithIdentity records
// who holds a lock in its key's value, where `etcdctl get` shows it.
func ExampleWithIdentity() {
	client, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	session, err := etcdsync.NewSession(ctx, client,
		etcdsync.WithPrefix("app1/"), etcdsync.WithIdentity("worker-7"))
	if err != nil {
		log.Fatal(err)
	}
	defer session.Close()
	mu, err := session.Mutex("jobs/nightly")
	if err != nil {
		log.Fatal(err)
	}
	lease, err := mu.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release(ctx)

	resp, err := client.Get(ctx, "app1/jobs/nightly/", clientv3.WithPrefix())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d key, held by %s\n", len(resp.Kvs), resp.Kvs[0].Value)
	// Output:
	// 1 key, held by worker-7
}

// Inspect shows who holds a lock and who waits for it; ForceRelease breaks
// a stuck holder's lock: its Lease ends as lost, with the reason, and the
// next waiter gets the lock.
func ExampleSession_ForceRelease() {
	client, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func(identity string) (*etcdsync.Session, distsync.Mutex) {
		s, err := etcdsync.NewSession(ctx, client, etcdsync.WithIdentity(identity))
		if err != nil {
			log.Fatal(err)
		}
		mu, err := s.Mutex("jobs/stuck")
		if err != nil {
			log.Fatal(err)
		}
		return s, mu
	}
	stuck, mu1 := open("worker-1")
	defer stuck.Close()
	next, mu2 := open("worker-2")
	defer next.Close()

	held, err := mu1.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	waiting := make(chan distsync.Lease)
	go func() {
		l, err := mu2.Lock(ctx)
		if err != nil {
			log.Fatal(err)
		}
		waiting <- l
	}()
	var st distsync.Status
	for len(st.Waiters) == 0 { // until worker-2 waits
		if st, err = next.Inspect(ctx, "jobs/stuck"); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("held by", st.Holders[0].Identity, "waited for by", st.Waiters[0].Identity)

	if err := next.ForceRelease(ctx, "jobs/stuck", st.Holders[0].Token); err != nil {
		log.Fatal(err)
	}
	<-held.Done()
	fmt.Println("worker-1 lost it:", distsync.LostReason(held.Err()))
	l := <-waiting
	defer l.Release(ctx)
	fmt.Println("worker-2 holds it:", l.Err() == nil)
	// Output:
	// held by worker-1 waited for by worker-2
	// worker-1 lost it: force_released
	// worker-2 holds it: true
}
