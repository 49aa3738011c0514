package election_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/election"
	"github.com/distsync/distsync/etcdsync"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// newClient connects to the test package's embedded etcd; in a service it
// is your own clientv3.New.
func newClient() *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// openSession opens a Session on client, bounded by a deadline.
func openSession(client *clientv3.Client) *etcdsync.Session {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := etcdsync.NewSession(ctx, client, etcdsync.WithTTL(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	return s
}

// Two replicas of a service campaign; the first leads, and the second
// takes over as soon as the first resigns.
func Example() {
	client := newClient()
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Each replica has a Session of its own (here on one client).
	sessionA, err := etcdsync.NewSession(ctx, client, etcdsync.WithTTL(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer sessionA.Close()
	sessionB := openSession(client)
	defer sessionB.Close()
	a, err := sessionA.Election("services/billing")
	if err != nil {
		log.Fatal(err)
	}
	b, err := sessionB.Election("services/billing")
	if err != nil {
		log.Fatal(err)
	}

	first, err := a.Campaign(ctx, []byte("replica-a"))
	if err != nil {
		log.Fatal(err)
	}
	leader, _ := b.Leader(ctx)
	fmt.Printf("leader: %s\n", leader.Value)

	next := make(chan distsync.Leadership)
	go func() {
		l, err := b.Campaign(ctx, []byte("replica-b")) // waits for a to resign
		if err != nil {
			log.Fatal(err)
		}
		next <- l
	}()
	first.Release(ctx) // resign: b leads at once
	second := <-next
	leader, _ = a.Leader(ctx)
	fmt.Printf("leader: %s, term above the previous one: %t\n", leader.Value, second.Token() > first.Token())
	second.Release(ctx)
	_, err = a.Leader(ctx)
	fmt.Println("no leader:", errors.Is(err, distsync.ErrNoLeader))
	// Output:
	// leader: replica-a
	// leader: replica-b, term above the previous one: true
	// no leader: true
}

// Observe delivers every change: the state when it starts, each new leader,
// each proclaimed value, and "no leader".
func ExampleElection_Observe() {
	client := newClient()
	defer client.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	session := openSession(client)
	defer session.Close()
	e, err := session.Election("example-observe")
	if err != nil {
		log.Fatal(err)
	}
	changes := e.Observe(ctx)
	show := func() {
		if l := <-changes; l.None {
			fmt.Println("no leader")
		} else {
			fmt.Printf("leader %s\n", l.Value)
		}
	}
	show()

	lead, err := e.Campaign(ctx, []byte("10.0.0.1:8080"))
	if err != nil {
		log.Fatal(err)
	}
	show()
	lead.Proclaim(ctx, []byte("10.0.0.1:9090")) // the leader moved its port
	show()
	lead.Release(ctx)
	show()
	// Output:
	// no leader
	// leader 10.0.0.1:8080
	// leader 10.0.0.1:9090
	// no leader
}

// distsync.Run calls the leader's work with a context that ends when
// leadership is lost or the service shuts down, and resigns only after the
// work has returned.
func ExampleElection_run() {
	client := newClient()
	defer client.Close()
	ctx, shutdown := context.WithCancel(context.Background())

	session := openSession(client)
	defer session.Close()
	e, err := session.Election("example-run")
	if err != nil {
		log.Fatal(err)
	}
	err = distsync.Run(ctx, e, []byte("replica-1"), distsync.Callbacks{
		OnStartedLeading: func(ctx context.Context, l distsync.Leadership) {
			fmt.Println("leading: working, term above zero:", l.Token() > 0)
			shutdown() // here the service is told to stop
			<-ctx.Done()
			fmt.Println("work stopped:", ctx.Err())
		},
		OnStoppedLeading: func() { fmt.Println("resigned") },
	})
	fmt.Println("run returned:", err)
	// Output:
	// leading: working, term above zero: true
	// work stopped: context canceled
	// resigned
	// run returned: <nil>
}

// A write to etcd that happens only while still leading: the IsOwner
// comparison makes the Txn fail once leadership was lost or resigned.
func ExampleLeadership_IsOwner() {
	client := newClient()
	defer client.Close()
	ctx := context.Background()
	session := openSession(client)
	defer session.Close()
	e, err := session.Election("example-conditional-write")
	if err != nil {
		log.Fatal(err)
	}

	lead, err := e.Campaign(ctx, []byte("replica-1"))
	if err != nil {
		log.Fatal(err)
	}
	l := lead.(*election.Leadership)
	put := func() bool {
		resp, err := client.Txn(ctx).If(l.IsOwner()).Then(clientv3.OpPut("config/active", "replica-1")).Commit()
		if err != nil {
			log.Fatal(err)
		}
		return resp.Succeeded
	}
	fmt.Println("while leading:", put())
	lead.Release(ctx)
	fmt.Println("after resigning:", put())
	// Output:
	// while leading: true
	// after resigning: false
}
