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
// it is your own redis.NewClient (or NewUniversalClient).
func exampleClient() *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: server.Addr(), ContextTimeoutEnabled: true})
}

// A job wrapped in a cluster-wide lock whose context ends if the lock is
// lost.
func Example() {
	client := exampleClient()
	defer client.Close()
	ctx := context.Background()

	mu, err := redissync.NewMutexWithClient(ctx, client, "jobs/nightly-report", redissync.WithTTL(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer mu.Close()

	lease, err := mu.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release(ctx)

	jobCtx, cancel := distsync.LeaseContext(ctx, lease)
	defer cancel()
	fmt.Println("running the job; lock held:", jobCtx.Err() == nil)
	// Output: running the job; lock held: true
}

// Several primitives share one session: one pub/sub connection and one
// renewal policy. TryLock does not wait.
func ExampleNewSession() {
	client := exampleClient()
	defer client.Close()
	ctx := context.Background()

	s, err := redissync.NewSession(ctx, client, redissync.WithTTL(3*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	a, _ := redissync.NewMutex(s, "example-session")
	b, _ := redissync.NewMutex(s, "example-session")

	held, err := a.TryLock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	_, err = b.TryLock(ctx)
	fmt.Println("second TryLock would block:", errors.Is(err, distsync.ErrWouldBlock))
	held.Release(ctx)
	// Output: second TryLock would block: true
}

// At most two workers run at once; the limit is stored and checked.
func ExampleSemaphore() {
	client := exampleClient()
	defer client.Close()
	ctx := context.Background()
	s, _ := redissync.NewSession(ctx, client)
	defer s.Close()

	sem, _ := redissync.NewSemaphore(s, "example-workers", 2)
	p1, _ := sem.Acquire(ctx)
	p2, _ := sem.Acquire(ctx)
	_, err := sem.TryAcquire(ctx)
	fmt.Println("third permit would block:", errors.Is(err, distsync.ErrWouldBlock))

	other, _ := redissync.NewSemaphore(s, "example-workers", 3)
	_, err = other.TryAcquire(ctx)
	fmt.Println("limit 3 on a limit-2 semaphore:", errors.Is(err, distsync.ErrLimitMismatch))
	p1.Release(ctx)
	p2.Release(ctx)
	// Output:
	// third permit would block: true
	// limit 3 on a limit-2 semaphore: true
}

// One leader at a time; observers see every change, including "no leader".
func ExampleElection() {
	client := exampleClient()
	defer client.Close()
	ctx := context.Background()
	s, _ := redissync.NewSession(ctx, client)
	defer s.Close()
	e, _ := redissync.NewElection(s, "example-election")

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
	ctx := context.Background()
	s, _ := redissync.NewSession(ctx, client, redissync.WithTTL(300*time.Millisecond))
	defer s.Close()
	store := &fencedStore{}
	m, _ := redissync.NewMutex(s, "example-fencing")

	old, _ := m.Lock(ctx)
	// An operator deletes the holder's entry; renewal notices within TTL/3.
	client.ZRem(ctx, "distsync:{example-fencing}:h", old.(*redissync.Lease).Member())
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
