package integration

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// TestConformance runs the whole conformance suite — every primitive, and
// the Session itself — on every backend, through one adapter each.
func TestConformance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Run("Mutex", func(t *testing.T) { testMutexConformance(t, b.mutexes()) })
			t.Run("RWMutex", func(t *testing.T) { testRWMutexConformance(t, b.rwmutexes()) })
			t.Run("Semaphore", func(t *testing.T) { testSemaphoreConformance(t, b.semaphores()) })
			t.Run("Election", func(t *testing.T) { testElectionConformance(t, b.elections()) })
			t.Run("Session", func(t *testing.T) { testSessionConformance(t, b) })
			t.Run("Inspect", func(t *testing.T) { testInspectConformance(t, b) })
		})
	}
}

// sessionOf remembers the Session each primitive handed to a suite was
// opened from, so that endSession can expire it. Keys are the checked
// wrappers the suites see.
var sessionOf sync.Map // primitive → distsync.Session

// openChecked opens a Session of b whose primitives check every error they
// return for exactly one sentinel.
func (b backend) openChecked(t *testing.T) distsync.Session {
	t.Helper()
	return checkedSession{t: t, s: b.open(t)}
}

func (b backend) endSessionOf(t *testing.T, p any) {
	t.Helper()
	s, ok := sessionOf.Load(p)
	if !ok {
		t.Fatalf("no session recorded for %T", p)
	}
	b.expire(t, s.(checkedSession).s)
}

func (b backend) mutexes() mutexBackend {
	open := func(t *testing.T, s distsync.Session, name string) distsync.Mutex {
		t.Helper()
		m, err := s.Mutex(name)
		if err != nil {
			t.Fatal(err)
		}
		sessionOf.Store(m, s)
		return m
	}
	return mutexBackend{
		newMutex: func(t *testing.T, name string) distsync.Mutex { return open(t, b.openChecked(t), name) },
		sameSession: func(t *testing.T, name string) (distsync.Mutex, distsync.Mutex) {
			s := b.openChecked(t)
			return open(t, s, name), open(t, s, name)
		},
		endSession:  func(t *testing.T, m distsync.Mutex) { b.endSessionOf(t, m) },
		deleteState: func(t *testing.T, l distsync.Lease) { b.deleteState(t, unwrapLease(l)) },
		keys:        b.keys,
	}
}

func (b backend) rwmutexes() rwBackend {
	return rwBackend{
		newRW: func(t *testing.T, name string) distsync.RWMutex {
			s := b.openChecked(t)
			rw, err := s.RWMutex(name)
			if err != nil {
				t.Fatal(err)
			}
			sessionOf.Store(rw, s)
			return rw
		},
		endSession: func(t *testing.T, rw distsync.RWMutex) { b.endSessionOf(t, rw) },
		keys:       b.keys,
	}
}

func (b backend) semaphores() semBackend {
	return semBackend{
		newSem: func(t *testing.T, name string, limit int64) (distsync.Semaphore, error) {
			s := b.openChecked(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			sem, err := s.Semaphore(ctx, name, limit)
			if err != nil {
				return nil, err
			}
			sessionOf.Store(sem, s)
			return sem, nil
		},
		endSession: func(t *testing.T, sem distsync.Semaphore) { b.endSessionOf(t, sem) },
		keys:       b.keys,
	}
}

func (b backend) elections() electionBackend {
	open := func(t *testing.T, s distsync.Session, name string) distsync.Election {
		t.Helper()
		e, err := s.Election(name)
		if err != nil {
			t.Fatal(err)
		}
		sessionOf.Store(e, s)
		return e
	}
	return electionBackend{
		newElection: func(t *testing.T, name string) distsync.Election { return open(t, b.openChecked(t), name) },
		newCuttableElection: func(t *testing.T, name string) (distsync.Election, func(), func()) {
			s, cut, heal := b.openCuttable(t)
			return open(t, checkedSession{t: t, s: s}, name), cut, heal
		},
		endSession:       func(t *testing.T, e distsync.Election) { b.endSessionOf(t, e) },
		compact:          b.compact,
		keys:             b.keys,
		observeCoalesces: b.observeCoalesces,
	}
}

// testSessionConformance holds the Session itself to the contract: it goes
// on after its backend session ends, it refuses a denied user at once, and
// Close ends everything.
func testSessionConformance(t *testing.T, b backend) {
	t.Run("WorksAgainAfterExpiry", func(t *testing.T) { testWorksAgainAfterExpiry(t, b) })
	t.Run("DeniedAtOnce", func(t *testing.T) { testDeniedAtOnce(t, b) })
	t.Run("Close", func(t *testing.T) { testSessionClose(t, b) })
}

// kinds is one primitive of each kind, named after the test: a Mutex, an
// RWMutex taken for writing, one taken for reading, a Semaphore and an
// Election.
type kinds struct {
	m      distsync.Mutex
	rw, rr distsync.RWMutex
	sem    distsync.Semaphore
	e      distsync.Election
}

var kindSuffixes = []string{"/m", "/rw", "/rr", "/sem", "/e"}

func openKinds(t *testing.T, s distsync.Session) kinds {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var k kinds
	var err error
	if k.m, err = s.Mutex(t.Name() + "/m"); err != nil {
		t.Fatal(err)
	}
	if k.rw, err = s.RWMutex(t.Name() + "/rw"); err != nil {
		t.Fatal(err)
	}
	if k.rr, err = s.RWMutex(t.Name() + "/rr"); err != nil {
		t.Fatal(err)
	}
	if k.sem, err = s.Semaphore(ctx, t.Name()+"/sem", 2); err != nil {
		t.Fatal(err)
	}
	if k.e, err = s.Election(t.Name() + "/e"); err != nil {
		t.Fatal(err)
	}
	return k
}

// acquireAll takes one lease of each kind, each call bounded by ctx. On
// failure it releases what it took.
func (k kinds) acquireAll(ctx context.Context) ([]distsync.Lease, error) {
	var ls []distsync.Lease
	for _, acquire := range []func(context.Context) (distsync.Lease, error){
		k.m.Lock,
		k.rw.Lock,
		k.rr.RLock,
		k.sem.Acquire,
		func(ctx context.Context) (distsync.Lease, error) { return k.e.Campaign(ctx, []byte("v")) },
	} {
		l, err := acquire(ctx)
		if err != nil {
			for _, h := range ls {
				_ = h.Release(ctx)
			}
			return nil, err
		}
		ls = append(ls, l)
	}
	return ls, nil
}

// testWorksAgainAfterExpiry: after the backend session underneath a
// Session ends, the leases taken under it end as lost, and every primitive
// opened from it — and new ones — acquire again on the same Session.
func testWorksAgainAfterExpiry(t *testing.T, b backend) {
	s := b.openChecked(t)
	k := openKinds(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before, err := k.acquireAll(ctx)
	if err != nil {
		t.Fatal(err)
	}

	b.expire(t, s.(checkedSession).s)
	for i, l := range before {
		select {
		case <-l.Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("lease %d not told of the expiry within 20s", i)
		}
		if !errors.Is(l.Err(), distsync.ErrLost) {
			t.Fatalf("lease %d after the expiry: Err %v, want ErrLost", i, l.Err())
		}
	}

	for round := range 2 { // the same primitives, then new ones
		if round == 1 {
			k = openKinds(t, s)
		}
		after, err := k.acquireAll(ctx)
		if err != nil {
			t.Fatalf("round %d: acquiring again after the expiry: %v", round, err)
		}
		for i, l := range after {
			if l.Err() != nil {
				t.Fatalf("round %d: lease %d ended at once: %v", round, i, l.Err())
			}
			if err := l.Release(ctx); err != nil {
				t.Fatalf("round %d: release %d: %v", round, i, err)
			}
		}
	}
	for _, suffix := range kindSuffixes {
		waitKeys(t, b.keys, t.Name()+suffix, 0)
	}
}

// testDeniedAtOnce: a user the server refuses gets ErrDenied from every
// call at once — never retried until the context ends — and Run returns it.
func testDeniedAtOnce(t *testing.T, b backend) {
	s := b.denied(t)
	if s == nil {
		return // refused when the Session was opened, with ErrDenied
	}
	s = checkedSession{t: t, s: s}
	// At once: well before the context ends, which a retried failure would
	// wait for.
	const patience = 30 * time.Second
	expectDenied := func(what string, call func(context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		start := time.Now()
		err := call(ctx)
		if !errors.Is(err, distsync.ErrDenied) {
			t.Fatalf("%s as a denied user: %v, want ErrDenied", what, err)
		}
		if ctx.Err() != nil {
			t.Fatalf("%s as a denied user returned only when its context ended (%v): it was retried", what, time.Since(start))
		}
	}
	name := t.Name()
	m, err := s.Mutex(name + "/m")
	if err != nil {
		t.Fatal(err)
	}
	expectDenied("Lock", func(ctx context.Context) error { _, err := m.Lock(ctx); return err })
	expectDenied("TryLock", func(ctx context.Context) error { _, err := m.TryLock(ctx); return err })
	rw, err := s.RWMutex(name + "/rw")
	if err != nil {
		t.Fatal(err)
	}
	expectDenied("RLock", func(ctx context.Context) error { _, err := rw.RLock(ctx); return err })
	expectDenied("Semaphore+Acquire", func(ctx context.Context) error {
		sem, err := s.Semaphore(ctx, name+"/sem", 2)
		if err != nil {
			return err
		}
		_, err = sem.Acquire(ctx)
		return err
	})
	e, err := s.Election(name + "/e")
	if err != nil {
		t.Fatal(err)
	}
	expectDenied("Campaign", func(ctx context.Context) error { _, err := e.Campaign(ctx, []byte("v")); return err })
	expectDenied("Run", func(ctx context.Context) error {
		return distsync.Run(ctx, e, []byte("v"), distsync.Callbacks{
			OnStartedLeading: func(context.Context, distsync.Leadership) { t.Error("a denied user led") },
		})
	})
}

// testSessionClose: Close ends the leases taken under the Session, later
// calls fail with ErrClosed, and a second Close is harmless.
func testSessionClose(t *testing.T, b backend) {
	s := b.openChecked(t)
	k := openKinds(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held, err := k.acquireAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, l := range held {
		select {
		case <-l.Done():
		default:
			t.Fatalf("lease %d still held after Close", i)
		}
		// A Lease ends released or lost, nothing else (Lease.Err).
		if err := l.Err(); !errors.Is(err, distsync.ErrReleased) && !errors.Is(err, distsync.ErrLost) {
			t.Fatalf("lease %d after Close: Err %v, want ErrReleased or ErrLost", i, err)
		}
	}
	if _, err := k.m.TryLock(ctx); !errors.Is(err, distsync.ErrClosed) {
		t.Fatalf("TryLock after Close: %v, want ErrClosed", err)
	}
	if _, err := k.sem.Acquire(ctx); !errors.Is(err, distsync.ErrClosed) {
		t.Fatalf("Acquire after Close: %v, want ErrClosed", err)
	}
	if _, err := k.e.Campaign(ctx, nil); !errors.Is(err, distsync.ErrClosed) {
		t.Fatalf("Campaign after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, suffix := range kindSuffixes {
		waitKeys(t, b.keys, t.Name()+suffix, 0)
	}
}
