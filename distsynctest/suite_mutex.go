package distsynctest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// mutexBackend is what the conformance suite needs from a backend to hold a
// Mutex to the properties TestSession lists. Every function fails t on
// error and registers its own cleanup.
type mutexBackend struct {
	// newMutex returns the Mutex called name on a new client and session of
	// its own, as a separate process would have.
	newMutex func(t *testing.T, name string) distsync.Mutex
	// sameSession returns two Mutexes called name on one client and session.
	sameSession func(t *testing.T, name string) (distsync.Mutex, distsync.Mutex)
	// endSession ends the session behind m from outside, as an operator or
	// an expiry would (etcd: revoke its lease).
	endSession func(t *testing.T, m distsync.Mutex)
	// deleteState deletes the backend state of l from outside.
	deleteState func(t *testing.T, l distsync.Lease)
	// keys lists the backend state of name (holders and waiters).
	keys func(t *testing.T, name string) []string
}

// testMutexConformance runs the Mutex conformance suite on backend b.
func testMutexConformance(t *testing.T, b mutexBackend) {
	t.Run("MutualExclusion", func(t *testing.T) { testMutualExclusion(t, b) })
	t.Run("FIFO", func(t *testing.T) { testFIFO(t, b) })
	t.Run("TryLock", func(t *testing.T) { testTryLock(t, b) })
	t.Run("CancelLeavesNothing", func(t *testing.T) { testCancelLeavesNothing(t, b) })
	t.Run("FencingMonotonic", func(t *testing.T) { testFencingMonotonic(t, b) })
	t.Run("LossOnSessionEnd", func(t *testing.T) { testLoss(t, b, b.endSession, "session end") })
	t.Run("LossOnDelete", func(t *testing.T) {
		testLoss(t, b, func(t *testing.T, _ distsync.Mutex) {}, "delete")
	})
	t.Run("SameSessionExcludes", func(t *testing.T) { testSameSession(t, b) })
	t.Run("NameIsolation", func(t *testing.T) { testNameIsolation(t, b) })
	t.Run("ReleaseIsExact", func(t *testing.T) { testReleaseExact(t, b) })
}

// overlapDetector counts critical sections that overlapped.
type overlapDetector struct {
	inside, overlaps atomic.Int64
}

func (d *overlapDetector) critical(hold time.Duration) {
	if d.inside.Add(1) > 1 {
		d.overlaps.Add(1)
	}
	time.Sleep(hold)
	d.inside.Add(-1)
}

// noLock is the control of the overlap detector: a "mutex" that excludes
// nothing, to show that the detector fires when exclusion fails.
type noLock struct{}

func (noLock) Lock(context.Context) (distsync.Lease, error)    { return fakeLease{}, nil }
func (noLock) TryLock(context.Context) (distsync.Lease, error) { return fakeLease{}, nil }

type fakeLease struct{}

func (fakeLease) Token() uint64                 { return 0 }
func (fakeLease) Done() <-chan struct{}         { return nil }
func (fakeLease) Err() error                    { return nil }
func (fakeLease) Release(context.Context) error { return nil }

// contend runs workers goroutines, each taking its Mutex rounds times and
// holding it for hold inside the detector.
func contend(t *testing.T, mus []distsync.Mutex, rounds int, hold time.Duration, d *overlapDetector) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(mus))
	for _, m := range mus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				l, err := m.Lock(ctx)
				if err != nil {
					errs <- err
					return
				}
				d.critical(hold)
				if err := l.Release(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testMutualExclusion(t *testing.T, b mutexBackend) {
	const workers, rounds = 6, 8
	var control overlapDetector
	ctrl := make([]distsync.Mutex, workers)
	for i := range ctrl {
		ctrl[i] = noLock{}
	}
	contend(t, ctrl, rounds, 2*time.Millisecond, &control)
	if control.overlaps.Load() == 0 {
		t.Fatal("control: the overlap detector did not fire without a lock; it cannot catch a violation")
	}

	var d overlapDetector
	mus := make([]distsync.Mutex, workers)
	for i := range mus {
		mus[i] = b.newMutex(t, t.Name())
	}
	contend(t, mus, rounds, 2*time.Millisecond, &d)
	if got := d.overlaps.Load(); got != 0 {
		t.Fatalf("%d overlapping critical sections (control had %d)", got, control.overlaps.Load())
	}
	if keys := b.keys(t, t.Name()); len(keys) != 0 {
		t.Fatalf("keys left after all released: %q", keys)
	}
}

// waitKeys waits until name has n keys (holders plus waiters).
func waitKeys(t *testing.T, keys func(*testing.T, string) []string, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := len(keys(t, name))
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d keys of %q: have %d", n, name, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testFIFO(t *testing.T, b mutexBackend) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	first, err := b.newMutex(t, name).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const waiters = 5
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i := range waiters {
		m := b.newMutex(t, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := m.Lock(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			_ = l.Release(ctx)
		}()
		// Arrival order is the order in which the waiters' state reached
		// the backend: wait for each before starting the next.
		waitKeys(t, b.keys, name, i+2)
	}
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	want := []int{0, 1, 2, 3, 4}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("grant order %v, want arrival order %v", order, want)
	}
}

func testTryLock(t *testing.T, b mutexBackend) {
	ctx := context.Background()
	name := t.Name()
	m1, m2 := b.newMutex(t, name), b.newMutex(t, name)
	l1, err := m1.TryLock(ctx)
	if err != nil {
		t.Fatalf("TryLock on a free lock: %v", err)
	}
	if _, err := m2.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryLock on a held lock: got %v, want ErrWouldBlock", err)
	}
	if keys := b.keys(t, name); len(keys) != 1 {
		t.Fatalf("a failed TryLock left state behind: keys %q", keys)
	}
	// A waiter also makes TryLock fail: it would jump the queue otherwise.
	wctx, wcancel := context.WithCancel(ctx)
	waitDone := make(chan error, 1)
	go func() {
		_, err := m2.Lock(wctx)
		waitDone <- err
	}()
	waitKeys(t, b.keys, name, 2)
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// The waiter now holds it; TryLock from the first must fail.
	waitKeys(t, b.keys, name, 1)
	if _, err := m1.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryLock while another holds after handoff: got %v, want ErrWouldBlock", err)
	}
	// The waiter's Lock returns held; its context is cancelled only if it
	// does not, so that a waiter still finishing its set-up when the lock
	// was released is not cut off by the test.
	defer wcancel()
	select {
	case err := <-waitDone:
		if err != nil {
			t.Fatalf("waiter: %v", err)
		}
	case <-time.After(10 * time.Second):
		wcancel()
		t.Fatalf("waiter still not holding 10 s after the release: %v", <-waitDone)
	}
}

func testCancelLeavesNothing(t *testing.T, b mutexBackend) {
	ctx := context.Background()
	name := t.Name()
	holder, err := b.newMutex(t, name).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waiter := b.newMutex(t, name)

	// A waiter that times out while queued.
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = waiter.Lock(tctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, distsync.ErrNotAcquired) {
		t.Fatalf("Lock past its deadline: got %v, want ErrNotAcquired and DeadlineExceeded", err)
	}
	// A waiter cancelled while queued.
	cctx, ccancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, err := waiter.Lock(cctx); errc <- err }()
	waitKeys(t, b.keys, name, 2)
	ccancel()
	if err := <-errc; !errors.Is(err, context.Canceled) || !errors.Is(err, distsync.ErrNotAcquired) {
		t.Fatalf("cancelled Lock: got %v, want ErrNotAcquired and Canceled", err)
	}
	// Deadlines so short that the enqueue request itself is cut off, with
	// an outcome the client cannot know.
	for _, d := range []time.Duration{time.Microsecond, 50 * time.Microsecond, 200 * time.Microsecond, time.Millisecond, 3 * time.Millisecond} {
		sctx, scancel := context.WithTimeout(ctx, d)
		l, err := waiter.Lock(sctx)
		scancel()
		if err == nil {
			_ = l.Release(ctx)
			t.Fatalf("Lock(%v) succeeded while held elsewhere", d)
		}
		if !errors.Is(err, distsync.ErrNotAcquired) {
			t.Fatalf("Lock(%v): got %v, want ErrNotAcquired", d, err)
		}
	}
	waitKeys(t, b.keys, name, 1)
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	waitKeys(t, b.keys, name, 0)
	// The lock is free for the next comer: nothing stale blocks it.
	l, err := waiter.TryLock(ctx)
	if err != nil {
		t.Fatalf("TryLock after cancelled waiters: %v", err)
	}
	_ = l.Release(ctx)
}

func testFencingMonotonic(t *testing.T, b mutexBackend) {
	const workers, rounds = 4, 6
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		mu     sync.Mutex
		tokens []uint64
		wg     sync.WaitGroup
	)
	for range workers {
		m := b.newMutex(t, t.Name())
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				l, err := m.Lock(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				// Appended under the distributed lock: the slice is in
				// acquisition order.
				mu.Lock()
				tokens = append(tokens, l.Token())
				mu.Unlock()
				_ = l.Release(ctx)
			}
		}()
	}
	wg.Wait()
	if len(tokens) != workers*rounds {
		t.Fatalf("got %d acquisitions, want %d", len(tokens), workers*rounds)
	}
	if !sort.SliceIsSorted(tokens, func(i, j int) bool { return tokens[i] < tokens[j] }) {
		t.Fatalf("tokens not increasing in acquisition order: %v", tokens)
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] == tokens[i-1] {
			t.Fatalf("token %d issued twice: %v", tokens[i], tokens)
		}
	}
}

// testLoss holds the lock, ends it from outside with end (or, for
// "delete", by deleting its state), and checks the holder is told, and that
// the lock passes on.
func testLoss(t *testing.T, b mutexBackend, end func(*testing.T, distsync.Mutex), how string) {
	ctx := context.Background()
	name := t.Name()
	m := b.newMutex(t, name)
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l.Err() != nil {
		t.Fatalf("Err while held: %v", l.Err())
	}
	start := time.Now()
	if how == "delete" {
		b.deleteState(t, l)
	} else {
		end(t, m)
	}
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("holder not told of the %s within 10s", how)
	}
	t.Logf("loss on %s reported after %v", how, time.Since(start))
	if !errors.Is(l.Err(), distsync.ErrLost) {
		t.Fatalf("Err after %s: got %v, want ErrLost", how, l.Err())
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release of a lost lease: %v", err)
	}
	if !errors.Is(l.Err(), distsync.ErrLost) {
		t.Fatalf("Err changed by Release after loss: %v", l.Err())
	}
	l2, err := b.newMutex(t, name).TryLock(ctx)
	if err != nil {
		t.Fatalf("lock not free after the holder lost it: %v", err)
	}
	_ = l2.Release(ctx)
}

func testSameSession(t *testing.T, b mutexBackend) {
	ctx := context.Background()
	m1, m2 := b.sameSession(t, t.Name())
	l1, err := m1.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryLock through the same session: got %v, want ErrWouldBlock", err)
	}
	if _, err := m1.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryLock through the same Mutex: got %v, want ErrWouldBlock", err)
	}
	got := make(chan distsync.Lease, 1)
	go func() {
		l, err := m2.Lock(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	waitKeys(t, b.keys, t.Name(), 2)
	select {
	case <-got:
		t.Fatal("second Lock through the same session got the lock while it was held")
	default:
	}
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l2 := <-got
	if l2 == nil {
		return
	}
	if l2.Token() <= l1.Token() {
		t.Fatalf("token %d not above %d", l2.Token(), l1.Token())
	}
	_ = l2.Release(ctx)
}

func testNameIsolation(t *testing.T, b mutexBackend) {
	ctx := context.Background()
	base := t.Name()
	// Names that a naive key layout would nest, escape into each other, or
	// confuse with the layout's own separators.
	names := []string{base, base + "/b", base + "/", base + "%2Fb", base + "%", base + "/b/c", base + " ", base + "é", base + "*", base + "\\"}
	var held []distsync.Lease
	for _, n := range names {
		l, err := b.newMutex(t, n).TryLock(ctx)
		if err != nil {
			t.Fatalf("TryLock(%q) while the other names are held: %v", n, err)
		}
		held = append(held, l)
	}
	for _, n := range names {
		if _, err := b.newMutex(t, n).TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
			t.Fatalf("TryLock(%q) while held: got %v, want ErrWouldBlock", n, err)
		}
		if keys := b.keys(t, n); len(keys) != 1 {
			t.Fatalf("name %q sees %d keys, want its own 1: %q", n, len(keys), keys)
		}
	}
	for _, l := range held {
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func testReleaseExact(t *testing.T, b mutexBackend) {
	ctx := context.Background()
	name := t.Name()
	m1, m2 := b.newMutex(t, name), b.newMutex(t, name)
	l1, err := m1.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.deleteState(t, l1) // l1 is lost; the lock is free
	<-l1.Done()
	l2, err := m2.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A late Release of the lost lease must not free the new holder's lock.
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m1.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("after a stale Release: got %v, want ErrWouldBlock (the new holder's lock was freed)", err)
	}
	if l2.Err() != nil {
		t.Fatalf("new holder lost its lease after a stale Release: %v", l2.Err())
	}
	_ = l2.Release(ctx)
}
