package distsynctest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// rwBackend is what the conformance suite needs to hold an RWMutex to the
// properties TestSession lists.
type rwBackend struct {
	// newRW returns the RWMutex called name on a client and session of its own.
	newRW func(t *testing.T, name string) distsync.RWMutex
	// endSession ends the session behind rw from outside.
	endSession func(t *testing.T, rw distsync.RWMutex)
	// keys lists the backend state of name (holders and waiters).
	keys func(t *testing.T, name string) []string
}

func testRWMutexConformance(t *testing.T, b rwBackend) {
	t.Run("ReadersShare", func(t *testing.T) { testReadersShare(t, b) })
	t.Run("WriterExcludes", func(t *testing.T) { testWriterExcludes(t, b) })
	t.Run("MixedExclusion", func(t *testing.T) { testRWMixed(t, b) })
	t.Run("NoWriterStarvation", func(t *testing.T) { testNoWriterStarvation(t, b) })
	t.Run("CancelLeavesNothing", func(t *testing.T) { testRWCancel(t, b) })
	t.Run("LossOnSessionEnd", func(t *testing.T) { testRWLoss(t, b) })
}

func testReadersShare(t *testing.T, b rwBackend) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var leases []distsync.Lease
	for range 4 {
		// Each RLock must return while the others are held.
		l, err := b.newRW(t, t.Name()).RLock(ctx)
		if err != nil {
			t.Fatalf("RLock while %d readers hold: %v", len(leases), err)
		}
		leases = append(leases, l)
	}
	if _, err := b.newRW(t, t.Name()).TryRLock(ctx); err != nil {
		t.Fatalf("TryRLock while only readers hold: %v", err)
	}
	if _, err := b.newRW(t, t.Name()).TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryLock while readers hold: got %v, want ErrWouldBlock", err)
	}
	for _, l := range leases {
		_ = l.Release(ctx)
	}
}

func testWriterExcludes(t *testing.T, b rwBackend) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := t.Name()
	w, err := b.newRW(t, name).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := b.newRW(t, name)
	if _, err := other.TryRLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryRLock while a writer holds: got %v, want ErrWouldBlock", err)
	}
	if _, err := other.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryLock while a writer holds: got %v, want ErrWouldBlock", err)
	}
	got := make(chan distsync.Lease, 1)
	go func() {
		l, err := other.RLock(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	waitKeys(t, b.keys, name, 2)
	select {
	case <-got:
		t.Fatal("RLock returned while a writer holds")
	default:
	}
	if err := w.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r != nil {
		if r.Token() <= w.Token() {
			t.Fatalf("reader token %d not above writer token %d", r.Token(), w.Token())
		}
		_ = r.Release(ctx)
	}
}

// rwDetector counts writers that overlapped anyone.
type rwDetector struct {
	readers, writers, violations atomic.Int64
}

func (d *rwDetector) read(hold time.Duration) {
	d.readers.Add(1)
	if d.writers.Load() > 0 {
		d.violations.Add(1)
	}
	time.Sleep(hold)
	d.readers.Add(-1)
}

func (d *rwDetector) write(hold time.Duration) {
	if d.writers.Add(1) > 1 || d.readers.Load() > 0 {
		d.violations.Add(1)
	}
	time.Sleep(hold)
	if d.readers.Load() > 0 {
		d.violations.Add(1)
	}
	d.writers.Add(-1)
}

// noRWLock excludes nothing: the detector's control.
type noRWLock struct{ noLock }

func (noRWLock) RLock(context.Context) (distsync.Lease, error)    { return fakeLease{}, nil }
func (noRWLock) TryRLock(context.Context) (distsync.Lease, error) { return fakeLease{}, nil }

func rwChurn(t *testing.T, rws []distsync.RWMutex, writers, rounds int, d *rwDetector) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i, rw := range rws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if i < writers {
					l, err := rw.Lock(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					d.write(2 * time.Millisecond)
					_ = l.Release(ctx)
				} else {
					l, err := rw.RLock(ctx)
					if err != nil {
						t.Error(err)
						return
					}
					d.read(2 * time.Millisecond)
					_ = l.Release(ctx)
				}
			}
		}()
	}
	wg.Wait()
}

func testRWMixed(t *testing.T, b rwBackend) {
	const clients, writers, rounds = 6, 2, 6
	var control rwDetector
	ctrl := make([]distsync.RWMutex, clients)
	for i := range ctrl {
		ctrl[i] = noRWLock{}
	}
	rwChurn(t, ctrl, writers, rounds, &control)
	if control.violations.Load() == 0 {
		t.Fatal("control: the detector did not fire without a lock")
	}
	var d rwDetector
	rws := make([]distsync.RWMutex, clients)
	for i := range rws {
		rws[i] = b.newRW(t, t.Name())
	}
	rwChurn(t, rws, writers, rounds, &d)
	if n := d.violations.Load(); n != 0 {
		t.Fatalf("%d writer overlaps (control had %d)", n, control.violations.Load())
	}
	waitKeys(t, b.keys, t.Name(), 0)
}

// testNoWriterStarvation keeps readers overlapping without a gap, then
// starts a writer: readers arriving after the writer queue behind it, so
// the writer gets the lock as soon as the readers before it are done.
func testNoWriterStarvation(t *testing.T, b rwBackend) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	var (
		stop       atomic.Bool
		writerIn   atomic.Bool  // the writer has acquired (never reset)
		afterWrite atomic.Int64 // readers that started waiting after the writer and got in before it
		wg         sync.WaitGroup
	)
	rws := make([]distsync.RWMutex, 4)
	for i := range rws {
		rws[i] = b.newRW(t, name)
	}
	writerQueued := make(chan struct{})
	for i, rw := range rws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 5 * time.Millisecond) // staggered: always one reader inside
			for !stop.Load() {
				queuedBehindWriter := false
				select {
				case <-writerQueued:
					queuedBehindWriter = true
				default:
				}
				l, err := rw.RLock(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if queuedBehindWriter && !writerIn.Load() {
					afterWrite.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
				_ = l.Release(ctx)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // the reader stream is flowing
	writer := b.newRW(t, name)
	done := make(chan distsync.Lease, 1)
	start := time.Now()
	go func() {
		l, err := writer.Lock(ctx)
		if err != nil {
			t.Error(err)
		}
		writerIn.Store(true)
		done <- l
	}()
	// The writer is queued once a writer key exists; readers that start
	// after that must wait behind it.
	deadline := time.Now().Add(10 * time.Second)
	for len(b.keys(t, name)) < len(rws)+1 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	close(writerQueued)
	var l distsync.Lease
	select {
	case l = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writer starved by a stream of readers for 10s")
	}
	t.Logf("writer got the lock after %v amid a reader stream", time.Since(start))
	time.Sleep(30 * time.Millisecond)
	if l != nil {
		_ = l.Release(ctx)
	}
	stop.Store(true)
	wg.Wait()
	if n := afterWrite.Load(); n != 0 {
		t.Fatalf("%d readers that arrived after the waiting writer got in before it", n)
	}
}

func testRWCancel(t *testing.T, b rwBackend) {
	ctx := context.Background()
	name := t.Name()
	w, err := b.newRW(t, name).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waiter := b.newRW(t, name)
	for _, lock := range []func(context.Context) (distsync.Lease, error){waiter.RLock, waiter.Lock} {
		tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := lock(tctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, distsync.ErrNotAcquired) {
			t.Fatalf("wait past deadline: got %v, want ErrNotAcquired and DeadlineExceeded", err)
		}
	}
	waitKeys(t, b.keys, name, 1)
	_ = w.Release(ctx)
	waitKeys(t, b.keys, name, 0)
}

func testRWLoss(t *testing.T, b rwBackend) {
	ctx := context.Background()
	rw := b.newRW(t, t.Name())
	r, err := rw.RLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.endSession(t, rw)
	select {
	case <-r.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("reader not told of the session end")
	}
	if !errors.Is(r.Err(), distsync.ErrLost) {
		t.Fatalf("Err: got %v, want ErrLost", r.Err())
	}
	w, err := b.newRW(t, t.Name()).TryLock(ctx)
	if err != nil {
		t.Fatalf("TryLock after the reader was lost: %v", err)
	}
	_ = w.Release(ctx)
}
