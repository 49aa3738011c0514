package redissync_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	goredis "github.com/redis/go-redis/v9"
)

// exampleClient connects to the test package's redis-server; in a service
// it is your own redis.NewClient (or NewUniversalClient). With
// ContextTimeoutEnabled, requests may run on the caller's goroutine (see
// the package doc).
func exampleClient() *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: server.Addr(), ContextTimeoutEnabled: true})
}

// A job wrapped in a cluster-wide lock whose context ends if the lock is
// lost.
func Example() {
	client := exampleClient()
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	s, err := redissync.NewSession(ctx, client, redissync.WithTTL(5*time.Second))
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
	// Output: running the job; lock held: true
}

// Dial creates the client from go-redis' options and owns it: Close
// closes it. The program uses only distsync's interfaces, so it runs on
// etcd or ZooKeeper by changing this one call.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var s distsync.Session
	s, err := redissync.Dial(ctx, &goredis.UniversalOptions{Addrs: []string{server.Addr()}})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	a, _ := s.Mutex("example-dial")
	b, _ := s.Mutex("example-dial")
	held, err := a.TryLock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	_, err = b.TryLock(ctx)
	fmt.Println("second TryLock would block:", errors.Is(err, distsync.ErrWouldBlock))
	held.Release(ctx)
	// Output: second TryLock would block: true
}

// At most five permits are held at once; a job takes as many as it
// needs. The limit is stored while the semaphore is in use, and a client
// with another limit is told.
func ExampleSemaphore() {
	client := exampleClient()
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redissync.NewSession(ctx, client)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	sem, err := s.Semaphore(ctx, "example-workers", 5)
	if err != nil {
		log.Fatal(err)
	}
	big, _ := sem.AcquireN(ctx, 4)
	_, err = sem.TryAcquireN(ctx, 2)
	fmt.Println("2 more permits would block:", errors.Is(err, distsync.ErrWouldBlock))

	_, err = s.Semaphore(ctx, "example-workers", 3)
	fmt.Println("limit 3 on a limit-5 semaphore:", errors.Is(err, distsync.ErrLimitMismatch))

	sem.SetLimit(ctx, 6)
	small, err := sem.TryAcquireN(ctx, 2)
	fmt.Println("2 more permits after SetLimit(6):", err == nil)
	small.Release(ctx)
	big.Release(ctx)
	// Output:
	// 2 more permits would block: true
	// limit 3 on a limit-5 semaphore: true
	// 2 more permits after SetLimit(6): true
}

// One leader at a time; observers see every change, including "no leader".
func ExampleElection() {
	client := exampleClient()
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redissync.NewSession(ctx, client)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	e, _ := s.Election("example-election")

	octx, stop := context.WithCancel(ctx)
	changes := e.Observe(octx)
	fmt.Println("none:", (<-changes).None)

	l, err := e.Campaign(ctx, []byte("node-1"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("leader: %s\n", (<-changes).Value)
	l.Proclaim(ctx, []byte("node-1, ready"))
	fmt.Printf("leader: %s\n", (<-changes).Value)
	l.Release(ctx)
	fmt.Println("none:", (<-changes).None)
	stop()
	for range changes {
	}
	// Output:
	// none: true
	// leader: node-1
	// leader: node-1, ready
	// none: true
}

// fencedStore rejects writes with a token lower than one it has seen.
type fencedStore struct{ highest uint64 }

func (s *fencedStore) Write(token uint64) error {
	if token < s.highest {
		return fmt.Errorf("stale fencing token %d < %d", token, s.highest)
	}
	s.highest = token
	return nil
}

// A holder whose lock was taken over (here: its entry deleted by hand) is
// told, and its late write is rejected by the fencing token.
func ExampleLease_Token() {
	client := exampleClient()
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redissync.NewSession(ctx, client, redissync.WithTTL(300*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	store := &fencedStore{}
	m, _ := s.Mutex("example-fencing")

	old, _ := m.Lock(ctx)
	// An operator deletes every holder of the name; renewal notices
	// within TTL/3.
	client.Del(ctx, "distsync:{example-fencing}:h")
	<-old.Done()
	cur, _ := m.Lock(ctx)
	fmt.Println("new holder writes:", store.Write(cur.Token()))
	fmt.Println("old holder rejected:", store.Write(old.Token()) != nil)
	fmt.Println("old holder was told:", errors.Is(old.Err(), distsync.ErrLost))
	cur.Release(ctx)
	// Output:
	// new holder writes: <nil>
	// old holder rejected: true
	// old holder was told: true
}

// WithPrefix confines the Session's keys and channels to one prefix (an
// ACL can then confine its user to it), and WithIdentity records who holds
// each name, where redis-cli shows it.
func ExampleWithIdentity() {
	client := exampleClient()
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redissync.NewSession(ctx, client,
		redissync.WithPrefix("billing:"), redissync.WithIdentity("billing-worker-3"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	m, _ := s.Mutex("jobs/nightly")
	lease, err := m.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release(ctx)

	// What an operator runs: redis-cli ZRANGE, then HGET of field "i"
	// followed by the member.
	holders, _ := client.ZRange(ctx, "billing:{jobs/nightly}:h", 0, -1).Result()
	who, _ := client.HGet(ctx, "billing:{jobs/nightly}:tok", "i"+holders[0]).Result()
	fmt.Println("held by:", who)
	// Output: held by: billing-worker-3
}
