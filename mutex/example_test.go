package mutex_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/mutex"
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

// newSession opens a Session on client, bounded by a deadline.
func newSession(client *clientv3.Client) *etcdsync.Session {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := etcdsync.NewSession(ctx, client, etcdsync.WithTTL(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	return s
}

// A cron job wrapped in a cluster-wide lock: whoever holds it runs the job,
// and the job's context ends if the lock is lost.
func Example() {
	client := newClient()
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
	defer lease.Release(context.Background())

	// Work under a context that is cancelled if the lock is lost.
	jobCtx, stop := distsync.LeaseContext(ctx, lease)
	defer stop()
	fmt.Println("running the job; lock held:", jobCtx.Err() == nil)
	// Output: running the job; lock held: true
}

// TryLock does not wait: it fails with ErrWouldBlock when the lock is held.
func ExampleMutex_TryLock() {
	client := newClient()
	defer client.Close()
	ctx := context.Background()
	s := newSession(client)
	defer s.Close()
	a, _ := s.Mutex("example-trylock")
	b, _ := s.Mutex("example-trylock")

	held, err := a.TryLock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	_, err = b.TryLock(ctx)
	fmt.Println(errors.Is(err, distsync.ErrWouldBlock))
	held.Release(ctx)
	// Output: true
}

// A write to etcd that happens only while the lock is still held: the
// lease's IsOwner comparison makes the Txn fail once the lock was lost or
// released, however late the write arrives.
func ExampleLease_IsOwner() {
	client := newClient()
	defer client.Close()
	ctx := context.Background()
	s := newSession(client)
	defer s.Close()
	mu, _ := s.Mutex("example-conditional-write")

	lease, err := mu.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	l := lease.(*mutex.Lease)
	put := func() bool {
		resp, err := client.Txn(ctx).If(l.IsOwner()).Then(clientv3.OpPut("config/leader-note", "written under the lock")).Commit()
		if err != nil {
			log.Fatal(err)
		}
		return resp.Succeeded
	}
	fmt.Println("while held:", put())
	lease.Release(ctx)
	fmt.Println("after release:", put())
	// Output:
	// while held: true
	// after release: false
}

// fencedStore stands for any resource the lock protects: it remembers the
// highest fencing token it accepted and rejects writes with a lower one,
// so a holder that was paused past its TTL cannot overwrite the work of
// the holder that came after it.
type fencedStore struct {
	mu      sync.Mutex
	highest uint64
	data    string
}

func (s *fencedStore) Write(token uint64, data string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.highest {
		return fmt.Errorf("stale fencing token %d < %d", token, s.highest)
	}
	s.highest, s.data = token, data
	return nil
}

// Fencing tokens make a protected resource reject a holder whose lock has
// passed on: here the first holder is "paused" while its lock is taken
// over, and its late write is refused.
func ExampleLease_Token() {
	client := newClient()
	defer client.Close()
	ctx := context.Background()
	store := &fencedStore{}

	firstSession, secondSession := newSession(client), newSession(client)
	defer firstSession.Close()
	defer secondSession.Close()
	first, _ := firstSession.Mutex("example-fencing")
	second, _ := secondSession.Mutex("example-fencing")

	old, err := first.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// The first holder stalls; meanwhile its lock is lost (here: its key
	// is deleted by an operator) and the second client takes it.
	client.Delete(ctx, old.(*mutex.Lease).Key())
	<-old.Done()
	cur, err := second.Lock(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("new holder writes:", store.Write(cur.Token(), "fresh"))
	fmt.Println("old holder writes:", store.Write(old.Token(), "stale") != nil)
	fmt.Println("old holder was told:", errors.Is(old.Err(), distsync.ErrLost))
	cur.Release(ctx)
	// Output:
	// new holder writes: <nil>
	// old holder writes: true
	// old holder was told: true
}
