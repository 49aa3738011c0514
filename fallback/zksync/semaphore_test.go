package zksync_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
)

func semaphore(t *testing.T, s *zksync.Session, name string, limit int64) *zksync.Semaphore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sem, err := s.Semaphore(ctx, name, limit)
	if err != nil {
		t.Fatal(err)
	}
	return sem.(*zksync.Semaphore)
}

// TestSemaphoreLimitOnlyWhileInUse: the limit is stored on the semaphore's
// node while it is in use and checked then; an idle semaphore takes the
// next user's limit, even while its node still holds the old one.
func TestSemaphoreLimitOnlyWhileInUse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := session(t)
	sem := semaphore(t, s, t.Name(), 2)
	l, err := sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := s.Conn().Get(sem.Path())
	if err != nil || string(data) != "2" {
		t.Fatalf("limit node data %q, %v; want \"2\"", data, err)
	}
	if _, err := s.Semaphore(ctx, t.Name(), 3); !errors.Is(err, distsync.ErrLimitMismatch) || errors.Is(err, distsync.ErrUnavailable) {
		t.Fatalf("Semaphore with another limit while in use: %v, want ErrLimitMismatch only", err)
	}
	_ = l.Release(ctx)
	// Idle: the node (a container, not reaped yet) still says 2.
	other := semaphore(t, s, t.Name(), 3)
	l3, err := other.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire of limit 3 on an idle semaphore that held 2: %v", err)
	}
	data, _, _ = s.Conn().Get(sem.Path())
	if string(data) != "3" {
		t.Fatalf("limit node data %q after the new user, want \"3\"", data)
	}
	if _, err := sem.TryAcquire(ctx); !errors.Is(err, distsync.ErrLimitMismatch) {
		t.Fatalf("TryAcquire with the old limit: %v, want ErrLimitMismatch", err)
	}
	_ = l3.Release(ctx)
}

// TestSemaphoreWeightedFIFO: a waiting AcquireN holds back later
// acquisitions, even ones that would fit.
func TestSemaphoreWeightedFIFO(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := session(t)
	sem := semaphore(t, s, t.Name(), 4)
	two, err := sem.AcquireN(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	big := make(chan distsync.Lease, 1)
	go func() {
		l, err := sem.AcquireN(ctx, 3)
		if err != nil {
			t.Error(err)
		}
		big <- l
	}()
	waitChildren(t, s.Conn(), sem.Path(), 2)
	if _, err := sem.TryAcquire(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryAcquire behind a waiting AcquireN(3): %v, want ErrWouldBlock", err)
	}
	small := make(chan distsync.Lease, 1)
	go func() {
		l, err := sem.Acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		small <- l
	}()
	waitChildren(t, s.Conn(), sem.Path(), 3)
	select {
	case <-small:
		t.Fatal("Acquire(1) passed a waiting AcquireN(3)")
	case <-time.After(200 * time.Millisecond):
	}
	_ = two.Release(ctx)
	l3 := <-big
	l1 := <-small // 3 + 1 fit in 4
	if l3 == nil || l1 == nil {
		t.FailNow()
	}
	_ = l3.Release(ctx)
	_ = l1.Release(ctx)
}

// TestSemaphoreSetLimit: SetLimit changes the stored limit; a waiter
// through another value with the old limit fails with ErrLimitMismatch,
// one through the same value counts with the new limit.
func TestSemaphoreSetLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := session(t)
	a := semaphore(t, s, t.Name(), 1)
	b := semaphore(t, session(t), t.Name(), 1)
	held, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() {
		l, err := b.Acquire(ctx)
		if err == nil {
			_ = l.Release(ctx)
		}
		errs <- err
	}()
	waitChildren(t, s.Conn(), a.Path(), 2)
	same := make(chan distsync.Lease, 1)
	go func() {
		l, err := a.Acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		same <- l
	}()
	waitChildren(t, s.Conn(), a.Path(), 3)
	if err := a.SetLimit(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if got := <-errs; !errors.Is(got, distsync.ErrLimitMismatch) {
		t.Fatalf("waiter with the old limit after SetLimit: %v, want ErrLimitMismatch", got)
	}
	l := <-same
	if l == nil {
		t.FailNow()
	}
	if a.Limit() != 3 {
		t.Fatalf("Limit() = %d after SetLimit(3)", a.Limit())
	}
	data, _, _ := s.Conn().Get(a.Path())
	if string(data) != "3" {
		t.Fatalf("stored limit %q, want \"3\"", data)
	}
	_ = l.Release(ctx)
	_ = held.Release(ctx)
	waitChildren(t, s.Conn(), a.Path(), 0)
}

// TestSemaphoreConcurrentFirstUsers: clients with different limits racing
// to use an idle semaphore never hold under two limits at once.
func TestSemaphoreConcurrentFirstUsers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := t.Name()
	for round := range 10 {
		type res struct {
			limit int64
			l     distsync.Lease
			err   error
		}
		out := make(chan res, 4)
		for i := range 4 {
			s := session(t)
			limit := int64(1 + i%2)
			go func() {
				sem, err := s.Semaphore(ctx, name, limit)
				if err != nil {
					out <- res{limit, nil, err}
					return
				}
				l, err := sem.TryAcquire(ctx)
				out <- res{limit, l, err}
			}()
		}
		limits := map[int64]int{}
		var held []distsync.Lease
		for range 4 {
			r := <-out
			switch {
			case r.err == nil:
				limits[r.limit]++
				held = append(held, r.l)
			case errors.Is(r.err, distsync.ErrLimitMismatch), errors.Is(r.err, distsync.ErrWouldBlock):
			default:
				t.Fatalf("round %d: %v", round, r.err)
			}
		}
		if len(limits) > 1 || limits[1] > 1 || limits[2] > 2 {
			t.Fatalf("round %d: held under limits %v", round, limits)
		}
		for _, l := range held {
			_ = l.Release(ctx)
		}
	}
}
