package distsynctest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// semBackend is what the conformance suite needs to hold a Semaphore to
// the properties TestSession lists.
type semBackend struct {
	// newSem opens the semaphore called name with limit on a client and
	// session of its own; a limit mismatch may surface here or at the first
	// acquisition.
	newSem func(t *testing.T, name string, limit int64) (distsync.Semaphore, error)
	// endSession ends the session behind s from outside.
	endSession func(t *testing.T, s distsync.Semaphore)
	// keys lists the holders and waiters of name.
	keys func(t *testing.T, name string) []string
}

func (b semBackend) open(t *testing.T, name string, limit int64) distsync.Semaphore {
	t.Helper()
	s, err := b.newSem(t, name, limit)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testSemaphoreConformance(t *testing.T, b semBackend) {
	t.Run("LimitNeverExceeded", func(t *testing.T) { testSemLimit(t, b) })
	t.Run("TryAcquire", func(t *testing.T) { testSemTry(t, b) })
	t.Run("LimitMismatch", func(t *testing.T) { testSemMismatch(t, b) })
	t.Run("FIFO", func(t *testing.T) { testSemFIFO(t, b) })
	t.Run("CancelLeavesNothing", func(t *testing.T) { testSemCancel(t, b) })
	t.Run("LossOnSessionEnd", func(t *testing.T) { testSemLoss(t, b) })
	t.Run("Weighted", func(t *testing.T) { testSemWeighted(t, b) })
	t.Run("WeightedFIFO", func(t *testing.T) { testSemWeightedFIFO(t, b) })
	t.Run("LimitOnlyWhileInUse", func(t *testing.T) { testSemLimitWhileInUse(t, b) })
	t.Run("SetLimit", func(t *testing.T) { testSemSetLimit(t, b) })
}

// holdCounter counts holders inside and the times they were more than limit.
type holdCounter struct {
	limit             int64
	inside, max, over atomic.Int64
}

func (c *holdCounter) hold(d time.Duration) {
	n := c.inside.Add(1)
	if n > c.limit {
		c.over.Add(1)
	}
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(d)
	c.inside.Add(-1)
}

// noSem admits everyone: the counter's control.
type noSem struct{}

func (noSem) Acquire(context.Context) (distsync.Lease, error)    { return fakeLease{}, nil }
func (noSem) TryAcquire(context.Context) (distsync.Lease, error) { return fakeLease{}, nil }
func (noSem) AcquireN(context.Context, int64) (distsync.Lease, error) {
	return fakeLease{}, nil
}
func (noSem) TryAcquireN(context.Context, int64) (distsync.Lease, error) {
	return fakeLease{}, nil
}
func (noSem) Limit() int64                          { return 0 }
func (noSem) SetLimit(context.Context, int64) error { return nil }

func semChurn(t *testing.T, sems []distsync.Semaphore, rounds int, c *holdCounter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range sems {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				l, err := s.Acquire(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				c.hold(3 * time.Millisecond)
				_ = l.Release(ctx)
			}
		}()
	}
	wg.Wait()
}

func testSemLimit(t *testing.T, b semBackend) {
	const limit, clients, rounds = 3, 8, 6
	control := holdCounter{limit: limit}
	ctrl := make([]distsync.Semaphore, clients)
	for i := range ctrl {
		ctrl[i] = noSem{}
	}
	semChurn(t, ctrl, rounds, &control)
	if control.over.Load() == 0 {
		t.Fatal("control: the counter did not fire without a semaphore")
	}
	c := holdCounter{limit: limit}
	sems := make([]distsync.Semaphore, clients)
	for i := range sems {
		sems[i] = b.open(t, t.Name(), limit)
	}
	semChurn(t, sems, rounds, &c)
	if n := c.over.Load(); n != 0 {
		t.Fatalf("more than %d holders %d times (max %d; control max %d)", limit, n, c.max.Load(), control.max.Load())
	}
	if c.max.Load() < 2 {
		t.Fatalf("at most %d holder at once: the permits were not shared", c.max.Load())
	}
	waitKeys(t, b.keys, t.Name(), 0)
}

func testSemTry(t *testing.T, b semBackend) {
	ctx := context.Background()
	const limit = 2
	var held []distsync.Lease
	for range limit {
		l, err := b.open(t, t.Name(), limit).TryAcquire(ctx)
		if err != nil {
			t.Fatalf("TryAcquire with %d of %d held: %v", len(held), limit, err)
		}
		held = append(held, l)
	}
	s := b.open(t, t.Name(), limit)
	if _, err := s.TryAcquire(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryAcquire with all permits held: got %v, want ErrWouldBlock", err)
	}
	waitKeys(t, b.keys, t.Name(), limit)
	_ = held[0].Release(ctx)
	l, err := s.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("TryAcquire after a release: %v", err)
	}
	_ = l.Release(ctx)
	_ = held[1].Release(ctx)
}

func testSemMismatch(t *testing.T, b semBackend) {
	ctx := context.Background()
	l, err := b.open(t, t.Name(), 3).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	s, err := b.newSem(t, t.Name(), 4)
	if err == nil {
		_, err = s.Acquire(ctx)
	}
	if !errors.Is(err, distsync.ErrLimitMismatch) {
		t.Fatalf("opening a limit-3 semaphore with limit 4: got %v, want ErrLimitMismatch", err)
	}
	waitKeys(t, b.keys, t.Name(), 1)
}

func testSemFIFO(t *testing.T, b semBackend) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	const limit = 2
	var held []distsync.Lease
	for range limit {
		l, err := b.open(t, name, limit).Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
	}
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	const waiters = 4
	for i := range waiters {
		s := b.open(t, name, limit)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := s.Acquire(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			// Hold until everyone queued has been granted in turn.
			time.Sleep(20 * time.Millisecond)
			_ = l.Release(ctx)
		}()
		waitKeys(t, b.keys, name, limit+i+1)
	}
	for _, l := range held {
		_ = l.Release(ctx)
	}
	wg.Wait()
	if fmt.Sprint(order[:2]) != "[0 1]" && fmt.Sprint(order[:2]) != "[1 0]" || fmt.Sprint(order[2:]) != "[2 3]" && fmt.Sprint(order[2:]) != "[3 2]" {
		t.Fatalf("grant order %v: the first two waiters must be granted before the last two", order)
	}
}

func testSemCancel(t *testing.T, b semBackend) {
	ctx := context.Background()
	name := t.Name()
	held, err := b.open(t, name, 1).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := b.open(t, name, 1)
	for _, d := range []time.Duration{50 * time.Microsecond, time.Millisecond, 100 * time.Millisecond} {
		tctx, cancel := context.WithTimeout(ctx, d)
		_, err := s.Acquire(tctx)
		cancel()
		if !errors.Is(err, distsync.ErrNotAcquired) {
			t.Fatalf("Acquire(%v) while full: got %v, want ErrNotAcquired", d, err)
		}
	}
	waitKeys(t, b.keys, name, 1)
	_ = held.Release(ctx)
	waitKeys(t, b.keys, name, 0)
}

func testSemLoss(t *testing.T, b semBackend) {
	ctx := context.Background()
	s := b.open(t, t.Name(), 1)
	l, err := s.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.endSession(t, s)
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("holder not told of the session end")
	}
	if !errors.Is(l.Err(), distsync.ErrLost) {
		t.Fatalf("Err: got %v, want ErrLost", l.Err())
	}
	// The permit came back.
	l2, err := b.open(t, t.Name(), 1).TryAcquire(ctx)
	if err != nil {
		t.Fatalf("TryAcquire after the holder was lost: %v", err)
	}
	_ = l2.Release(ctx)
}

func testSemWeighted(t *testing.T, b semBackend) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	s := b.open(t, name, 5)
	three, err := s.AcquireN(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.open(t, name, 5).TryAcquireN(ctx, 3); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryAcquireN(3) with 2 of 5 free: %v, want ErrWouldBlock", err)
	}
	two, err := b.open(t, name, 5).TryAcquireN(ctx, 2)
	if err != nil {
		t.Fatalf("TryAcquireN(2) with 2 of 5 free: %v", err)
	}
	if _, err := s.TryAcquire(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryAcquire with 0 of 5 free: %v, want ErrWouldBlock", err)
	}
	for _, n := range []int64{0, -1, 6} {
		if _, err := s.AcquireN(ctx, n); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Fatalf("AcquireN(%d) of limit 5: %v, want ErrInvalidConfig", n, err)
		}
	}
	// Releasing the 3 lets a waiting AcquireN(3) in.
	waiter := b.open(t, name, 5)
	got := make(chan error, 1)
	go func() {
		l, err := waiter.AcquireN(ctx, 3)
		if err == nil {
			err = l.Release(ctx)
		}
		got <- err
	}()
	waitKeys(t, b.keys, name, 3)
	select {
	case err := <-got:
		t.Fatalf("AcquireN(3) returned while only 0 of 5 were free: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := three.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("waiting AcquireN(3) after 3 were released: %v", err)
	}
	_ = two.Release(ctx)
	waitKeys(t, b.keys, name, 0)
}

// testSemWeightedFIFO: a waiting AcquireN holds back later, smaller
// acquisitions until it fits (no starvation of large requests).
func testSemWeightedFIFO(t *testing.T, b semBackend) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	one, err := b.open(t, name, 2).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	big := make(chan error, 1)
	bigSem := b.open(t, name, 2)
	go func() {
		l, err := bigSem.AcquireN(ctx, 2)
		if err == nil {
			err = l.Release(ctx)
		}
		big <- err
	}()
	waitKeys(t, b.keys, name, 2)
	// One permit is free, but the waiting AcquireN(2) came first.
	if _, err := b.open(t, name, 2).TryAcquire(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryAcquire behind a waiting AcquireN(2): %v, want ErrWouldBlock", err)
	}
	if err := one.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-big; err != nil {
		t.Fatalf("AcquireN(2): %v", err)
	}
	waitKeys(t, b.keys, name, 0)
}

// testSemLimitWhileInUse: the limit is stored only while the semaphore is
// in use; an idle one takes the limit of its next user.
func testSemLimitWhileInUse(t *testing.T, b semBackend) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	l, err := b.open(t, name, 2).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	waitKeys(t, b.keys, name, 0)
	s, err := b.newSem(t, name, 3)
	if err != nil {
		t.Fatalf("opening an idle semaphore with another limit: %v", err)
	}
	var held []distsync.Lease
	for i := range 3 {
		l, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatalf("permit %d of the new limit 3: %v", i+1, err)
		}
		held = append(held, l)
	}
	for _, l := range held {
		_ = l.Release(ctx)
	}
	waitKeys(t, b.keys, name, 0)
}

// testSemSetLimit: SetLimit changes the limit in use; held permits are
// kept; other values opened with the old limit get ErrLimitMismatch.
func testSemSetLimit(t *testing.T, b semBackend) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	a := b.open(t, name, 1)
	old := b.open(t, name, 1)
	la, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetLimit(ctx, 0); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Fatalf("SetLimit(0): %v, want ErrInvalidConfig", err)
	}
	if err := a.SetLimit(ctx, 2); err != nil {
		t.Fatalf("SetLimit(2): %v", err)
	}
	if got := a.Limit(); got != 2 {
		t.Fatalf("Limit after SetLimit(2) = %d", got)
	}
	if la.Err() != nil {
		t.Fatalf("held permit ended by SetLimit: %v", la.Err())
	}
	lb, err := b.open(t, name, 2).TryAcquire(ctx)
	if err != nil {
		t.Fatalf("second permit under the new limit 2: %v", err)
	}
	if _, err := old.TryAcquire(ctx); !errors.Is(err, distsync.ErrLimitMismatch) {
		t.Fatalf("TryAcquire through a value opened with the old limit: %v, want ErrLimitMismatch", err)
	}
	// Lowering keeps what is held.
	if err := a.SetLimit(ctx, 1); err != nil {
		t.Fatalf("SetLimit(1): %v", err)
	}
	if la.Err() != nil || lb.Err() != nil {
		t.Fatalf("held permits ended by lowering the limit: %v, %v", la.Err(), lb.Err())
	}
	if _, err := a.TryAcquire(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryAcquire with 2 held under limit 1: %v, want ErrWouldBlock", err)
	}
	_ = la.Release(ctx)
	_ = lb.Release(ctx)
	waitKeys(t, b.keys, name, 0)
}
