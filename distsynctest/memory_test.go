package distsynctest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// memSession opens a Session on m recording identity, closed at cleanup.
func memSession(t *testing.T, m *Memory, identity string) *MemorySession {
	t.Helper()
	s, err := m.NewSession(identity)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func memMutexOf(t *testing.T, s *MemorySession, name string) distsync.Mutex {
	t.Helper()
	mu, err := s.Mutex(name)
	if err != nil {
		t.Fatal(err)
	}
	return mu
}

// memLockAsync locks mu in a goroutine; the channel yields the memResult.
func memLockAsync(ctx context.Context, mu distsync.Mutex) <-chan memResult {
	ch := make(chan memResult, 1)
	go func() {
		l, err := mu.Lock(ctx)
		ch <- memResult{l, err}
	}()
	return ch
}

type memResult struct {
	l   distsync.Lease
	err error
}

// memWaitEntries waits until name has n entries.
func memWaitEntries(t *testing.T, s *MemorySession, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.entries(name)) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%q: %d entries, want %d", name, len(s.entries(name)), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMemoryIdentity(t *testing.T) {
	var m Memory // the zero value is ready to use
	if _, err := m.NewSession("bad\x00id"); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Fatalf("NewSession with a control character: %v, want ErrInvalidConfig", err)
	}
	s := memSession(t, &m, "")
	ctx := context.Background()
	l, err := memMutexOf(t, s, "n").Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Inspect(ctx, "n")
	if err != nil || len(st.Holders) != 1 || st.Holders[0].Identity != distsync.DefaultIdentity() {
		t.Fatalf("Inspect: %+v, %v; want one holder with the default identity", st, err)
	}
	_ = l.Release(ctx)
}

// TestMemoryDisconnect: the held lease is lost and the next waiter served;
// a waiting Lock of the cut session queues again after Reconnect; calls
// that do not wait fail with ErrUnavailable meanwhile.
func TestMemoryDisconnect(t *testing.T) {
	m := NewMemory()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cut, other, third := memSession(t, m, "cut"), memSession(t, m, "other"), memSession(t, m, "third")
	held, err := memMutexOf(t, cut, "n").Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	otherWait := memLockAsync(ctx, memMutexOf(t, other, "n"))
	memWaitEntries(t, third, "n", 2)

	cut.Disconnect()
	<-held.Done()
	if got := distsync.LostReason(held.Err()); got != distsync.LossDisconnected {
		t.Fatalf("held lease after Disconnect: %v, want reason %q", held.Err(), distsync.LossDisconnected)
	}
	r := <-otherWait
	if r.err != nil {
		t.Fatalf("waiter after the holder was cut off: %v", r.err)
	}
	cutWait := memLockAsync(ctx, memMutexOf(t, cut, "n"))
	if _, err := memMutexOf(t, cut, "n").TryLock(ctx); !errors.Is(err, distsync.ErrUnavailable) {
		t.Fatalf("TryLock while disconnected: %v, want ErrUnavailable", err)
	}
	if _, err := cut.Inspect(ctx, "n"); !errors.Is(err, distsync.ErrUnavailable) {
		t.Fatalf("Inspect while disconnected: %v, want ErrUnavailable", err)
	}
	// A waiter queued before the cut leaves the queue and keeps waiting.
	thirdWait := memLockAsync(ctx, memMutexOf(t, third, "n"))
	memWaitEntries(t, third, "n", 2)
	cut.Reconnect()
	memWaitEntries(t, third, "n", 3) // the cut session's Lock queued again, last
	_ = r.l.Release(ctx)
	r = <-thirdWait
	if r.err != nil {
		t.Fatal(r.err)
	}
	_ = r.l.Release(ctx)
	r = <-cutWait
	if r.err != nil {
		t.Fatalf("Lock through a reconnected session: %v", r.err)
	}
	_ = r.l.Release(ctx)
	memWaitEntries(t, third, "n", 0)
}

// TestMemoryWaiterEnds: a waiter fails with ErrLost when its session
// expires and with ErrClosed when it is closed, leaving nothing.
func TestMemoryWaiterEnds(t *testing.T) {
	m := NewMemory()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	holder := memSession(t, m, "holder")
	l, err := memMutexOf(t, holder, "n").Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := memSession(t, m, "waiter")
	ch := memLockAsync(ctx, memMutexOf(t, w, "n"))
	memWaitEntries(t, holder, "n", 2)
	Expire(t, w)
	if r := <-ch; distsync.LostReason(r.err) != distsync.LossSessionEnded {
		t.Fatalf("waiter whose session expired: %v, want reason %q", r.err, distsync.LossSessionEnded)
	}
	ch = memLockAsync(ctx, memMutexOf(t, w, "n")) // the session goes on
	memWaitEntries(t, holder, "n", 2)
	_ = w.Close()
	if r := <-ch; !errors.Is(r.err, distsync.ErrClosed) {
		t.Fatalf("waiter whose session closed: %v, want ErrClosed", r.err)
	}
	memWaitEntries(t, holder, "n", 1)
	if l.Err() != nil {
		t.Fatalf("holder ended by another session's end: %v", l.Err())
	}
	DeleteHolder(t, l)
	if got := distsync.LostReason(l.Err()); got != distsync.LossDeleted {
		t.Fatalf("after DeleteHolder: %v, want reason %q", l.Err(), distsync.LossDeleted)
	}
	if err := l.(*memLease).deleteHolder(); !errors.Is(err, distsync.ErrNotFound) {
		t.Fatalf("second deleteHolder: %v, want ErrNotFound", err)
	}
	memWaitEntries(t, holder, "n", 0)
}

// TestMemorySetLimitWaiters: SetLimit fails the waiters of other
// Semaphore values with the old limit, and keeps this value's own.
func TestMemorySetLimitWaiters(t *testing.T) {
	m := NewMemory()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	open := func() distsync.Semaphore {
		sem, err := memSession(t, m, "").Semaphore(ctx, "sem", 1)
		if err != nil {
			t.Fatal(err)
		}
		return sem
	}
	a, old := open(), open()
	l, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	acquire := func(sem distsync.Semaphore) <-chan memResult {
		ch := make(chan memResult, 1)
		go func() { l, err := sem.Acquire(ctx); ch <- memResult{l, err} }()
		return ch
	}
	ownWait := acquire(a)
	s := memSession(t, m, "")
	memWaitEntries(t, s, "sem", 2)
	oldWait := acquire(old)
	memWaitEntries(t, s, "sem", 3)
	if err := a.SetLimit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if r := <-oldWait; !errors.Is(r.err, distsync.ErrLimitMismatch) {
		t.Fatalf("waiter with the old limit after SetLimit: %v, want ErrLimitMismatch", r.err)
	}
	r := <-ownWait
	if r.err != nil {
		t.Fatalf("own waiter after SetLimit(2): %v", r.err)
	}
	_ = r.l.Release(ctx)
	_ = l.Release(ctx)
	memWaitEntries(t, s, "sem", 0)
}

// TestMemoryObserveEnds: an observer's channel closes when its session
// closes, and an observer cut off delivers what it missed after Reconnect.
func TestMemoryObserveEnds(t *testing.T) {
	m := NewMemory()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obs := memSession(t, m, "observer")
	e, err := obs.Election("e")
	if err != nil {
		t.Fatal(err)
	}
	ch := e.Observe(ctx)
	if l := <-ch; !l.None {
		t.Fatalf("first observation %+v, want no leader", l)
	}
	obs.Disconnect()
	ce, err := memSession(t, m, "cand").Election("e")
	if err != nil {
		t.Fatal(err)
	}
	ld, err := ce.Campaign(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	_ = ld.Release(ctx)
	select {
	case l := <-ch:
		t.Fatalf("observation %+v while disconnected", l)
	case <-time.After(20 * time.Millisecond):
	}
	obs.Reconnect()
	if l := <-ch; string(l.Value) != "a" || l.Term != ld.Token() {
		t.Fatalf("after Reconnect: %+v, want the missed leader a", l)
	}
	if l := <-ch; !l.None {
		t.Fatalf("after Reconnect: %+v, want no leader", l)
	}
	_ = obs.Close()
	if _, ok := <-ch; ok {
		t.Fatal("observer channel open after Close")
	}
}

// TestMemoryDeny: Deny refuses the names under its prefix only, at once,
// with ErrDenied, and leaves the others working.
func TestMemoryDeny(t *testing.T) {
	var m Memory
	m.Deny("secret/")
	s, err := m.NewSession("")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	denied, _ := s.Mutex("secret/a")
	if _, err := denied.Lock(ctx); !errors.Is(err, distsync.ErrDenied) || len(Sentinels(err)) != 1 {
		t.Fatalf("Lock on a denied name: %v, want ErrDenied alone", err)
	}
	if _, err := s.Inspect(ctx, "secret/a"); !errors.Is(err, distsync.ErrDenied) {
		t.Fatalf("Inspect on a denied name: %v, want ErrDenied", err)
	}
	if got := s.entries("secret/a"); len(got) != 0 {
		t.Fatalf("a denied Lock left %q", got)
	}
	open, _ := s.Mutex("public/a")
	l, err := open.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock on another name: %v", err)
	}
	_ = l.Release(ctx)
}
