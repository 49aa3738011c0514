// Anybackend is one program written against distsync's root interfaces
// (distsync.Session, Mutex, RWMutex, Semaphore, Election) that runs on any
// of the three backends. Only the line that creates the Session names one:
//
//	go run ./examples/anybackend -backend etcd -addr 127.0.0.1:2379
//	go run ./examples/anybackend -backend redis -addr 127.0.0.1:6379
//	go run ./examples/anybackend -backend zookeeper -addr 127.0.0.1:2181
//
// It prints the same lines on each:
//
//	mutex: held, then TryLock elsewhere would block
//	rwmutex: 2 readers at once, then the writer alone
//	semaphore: 2 of 3 permits in one lease, then 1 more, then full
//	election: "anybackend" leads, then nobody
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func main() {
	backend := flag.String("backend", "etcd", "etcd, redis or zookeeper")
	addr := flag.String("addr", "127.0.0.1:2379", "the server's address")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := open(ctx, *backend, *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "anybackend:", err)
		os.Exit(1)
	}
	defer s.Close()
	if err := work(ctx, s, "anybackend", os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "anybackend:", err)
		os.Exit(1)
	}
}

// ttl is how long a crashed holder keeps what it held, on every backend.
const ttl = 5 * time.Second

// open is the only code that names a backend: one line per backend.
func open(ctx context.Context, backend, addr string) (distsync.Session, error) {
	switch backend {
	case "etcd":
		return etcdsync.Dial(ctx, clientv3.Config{Endpoints: []string{addr}}, etcdsync.WithTTL(ttl))
	case "redis":
		return redissync.Dial(ctx, &redis.UniversalOptions{Addrs: []string{addr}}, redissync.WithTTL(ttl))
	case "zookeeper":
		return zksync.Dial(ctx, []string{addr}, zksync.WithTTL(ttl))
	}
	return nil, fmt.Errorf("unknown backend %q", backend)
}

// work uses each primitive once, through the root interfaces only, with
// names under prefix.
func work(ctx context.Context, s distsync.Session, prefix string, w io.Writer) error {
	// Mutex: a lease, and a second acquisition that would have to wait.
	m, err := s.Mutex(prefix + "/mutex")
	if err != nil {
		return err
	}
	l, err := m.Lock(ctx)
	if err != nil {
		return err
	}
	if _, err := m.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		return fmt.Errorf("TryLock while held: %v", err)
	}
	fmt.Fprintln(w, "mutex: held, then TryLock elsewhere would block")
	if err := l.Release(ctx); err != nil {
		return err
	}

	// RWMutex: readers share, the writer waits for them.
	rw, err := s.RWMutex(prefix + "/rwmutex")
	if err != nil {
		return err
	}
	r1, err := rw.RLock(ctx)
	if err != nil {
		return err
	}
	r2, err := rw.TryRLock(ctx)
	if err != nil {
		return err
	}
	if _, err := rw.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		return fmt.Errorf("TryLock with readers in: %v", err)
	}
	for _, r := range []distsync.Lease{r1, r2} {
		if err := r.Release(ctx); err != nil {
			return err
		}
	}
	wl, err := rw.Lock(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "rwmutex: 2 readers at once, then the writer alone")
	if err := wl.Release(ctx); err != nil {
		return err
	}

	// Semaphore: a weighted lease of 2 permits, one more, then full.
	sem, err := s.Semaphore(ctx, prefix+"/semaphore", 3)
	if err != nil {
		return err
	}
	two, err := sem.AcquireN(ctx, 2)
	if err != nil {
		return err
	}
	one, err := sem.TryAcquire(ctx)
	if err != nil {
		return err
	}
	if _, err := sem.TryAcquire(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		return fmt.Errorf("TryAcquire when full: %v", err)
	}
	fmt.Fprintln(w, "semaphore: 2 of 3 permits in one lease, then 1 more, then full")
	for _, p := range []distsync.Lease{two, one} {
		if err := p.Release(ctx); err != nil {
			return err
		}
	}

	// Election: campaign, see ourselves lead, resign.
	e, err := s.Election(prefix + "/election")
	if err != nil {
		return err
	}
	lead, err := e.Campaign(ctx, []byte(prefix))
	if err != nil {
		return err
	}
	leader, err := e.Leader(ctx)
	if err != nil {
		return err
	}
	if err := lead.Release(ctx); err != nil {
		return err
	}
	if _, err := e.Leader(ctx); !errors.Is(err, distsync.ErrNoLeader) {
		return fmt.Errorf("Leader after resigning: %v", err)
	}
	fmt.Fprintf(w, "election: %q leads, then nobody\n", leader.Value)
	return nil
}
