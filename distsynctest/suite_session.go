package distsynctest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// testSessionConformance holds the Session itself to the contract: it goes
// on after its backend session ends, it refuses a denied user at once, and
// Close ends everything.
func testSessionConformance(t *testing.T, b *suite) {
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
func testWorksAgainAfterExpiry(t *testing.T, b *suite) {
	s := b.openChecked(t)
	k := openKinds(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before, err := k.acquireAll(ctx)
	if err != nil {
		t.Fatal(err)
	}

	b.expire(t, s)
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
func testDeniedAtOnce(t *testing.T, b *suite) {
	if b.b.Denied == nil {
		t.Skip("distsynctest: Backend.Denied is nil")
	}
	var s distsync.Session = b.b.Denied(t)
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
func testSessionClose(t *testing.T, b *suite) {
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
