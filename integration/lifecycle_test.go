package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// The lifecycle checks hold every primitive on every backend to P11 (long
// lived): one instance reused over idle gaps keeps its leases, and after any
// cancellation, failure or Close nothing is left, neither in the client's
// goroutines nor in the server's own state (read from the server). They run
// over one small adapter per backend (lifeBackend), not one per primitive.

// lifeKind is one kind of acquisition: a primitive and its acquire call.
type lifeKind string

const (
	lifeMutex     lifeKind = "Mutex"
	lifeWrite     lifeKind = "RWMutex.Lock"
	lifeRead      lifeKind = "RWMutex.RLock"
	lifeSemaphore lifeKind = "Semaphore" // limit 1, so that a holder blocks
	lifeElection  lifeKind = "Election"
)

var lifeKinds = []lifeKind{lifeMutex, lifeWrite, lifeRead, lifeSemaphore, lifeElection}

// blocker is the kind whose holder makes an acquisition of k wait: a
// writer for a reader, the same kind otherwise.
func (k lifeKind) blocker() lifeKind {
	if k == lifeRead {
		return lifeWrite
	}
	return k
}

// A lifeAcquirer is one primitive instance and one acquire call on it.
type lifeAcquirer struct {
	acquire func(ctx context.Context) (distsync.Lease, error)
	// close closes the primitive; nil where the backend's primitives have
	// no Close of their own (their session's Close ends them).
	close func() error
}

// A lifeSession is one client and session of a backend, of its own.
type lifeSession struct {
	// open returns the primitive of kind k called name on this session.
	open func(t *testing.T, k lifeKind, name string) lifeAcquirer
	// end ends the session from outside, as an expiry or an operator
	// would (etcd: revoke its lease; Redis: drop its holders and waiters
	// of name; ZooKeeper: expire the session).
	end func(t *testing.T, name string)
	// close closes the session and its client; it is idempotent and waits
	// for nothing the test needs to see.
	close func()
}

// A lifeBackend is what the lifecycle checks need of a backend.
type lifeBackend struct {
	name string
	// ttl is the TTL (session timeout) of the sessions newSession opens:
	// the smallest the backend allows in these tests.
	ttl time.Duration
	// newSession opens a client and session of its own.
	newSession func(t *testing.T) *lifeSession
	// entries counts the holders and waiters of name, read from the
	// server by a client of the test's own.
	entries func(t *testing.T, name string) int
	// state reads the server's own view of what clients left on it, for
	// name and overall (watchers, subscriptions, connections, keys).
	state func(t *testing.T, name string) serverState
}

// lifeBackends are the backends' adapters, by name. An adapter's own
// clients (to end sessions and read the server) are opened for, and closed
// with, the test it is made for.
var lifeBackends = []struct {
	name string
	make func(t *testing.T) lifeBackend
}{
	{"etcd", etcdLifeBackend},
	{"redis", redisLifeBackend},
	{"zookeeper", zkLifeBackend},
}

// lifeName returns a name unique to the test, backend and kind.
func lifeName(t *testing.T, b lifeBackend, k lifeKind) string {
	return strings.NewReplacer("/", "-", ".", "-").Replace(fmt.Sprintf("%s-%s-%s-%d", t.Name(), b.name, k, time.Now().UnixNano()))
}

// TestLifecycleReuse takes many leases through one primitive instance on
// one session, with idle gaps of 0, ½, 1 and 3 TTL between them. Every
// lease must stay held (Done open, Err nil) for ¾ TTL, longer than a
// renewal period, until released; after the last gap, a loss caused from
// outside (the session ended) must still be told promptly.
func TestLifecycleReuse(t *testing.T) {
	// Idle gaps, in TTLs, before each acquisition after the first.
	gaps := []float64{0, 0.5, 0, 1, 0, 3, 0}
	for _, mk := range lifeBackends {
		for _, k := range lifeKinds {
			t.Run(mk.name+"/"+string(k), func(t *testing.T) {
				t.Parallel()
				testReuse(t, mk.make(t), k, gaps)
			})
		}
	}
}

func testReuse(t *testing.T, b lifeBackend, k lifeKind, gaps []float64) {
	name := lifeName(t, b, k)
	s := b.newSession(t)
	defer s.close()
	a := s.open(t, k, name)
	hold := b.ttl * 3 / 4

	var held, lost int
	var losses []string
	take := func(i int) distsync.Lease {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		l, err := a.acquire(ctx)
		if err != nil {
			t.Fatalf("acquisition %d: %v (after %v)", i, err, time.Since(start))
		}
		return l
	}
	for i := 0; i <= len(gaps); i++ {
		if i > 0 {
			// The idle gap is what this test is about: nothing may happen
			// in it, so there is no event to wait for.
			time.Sleep(time.Duration(gaps[i-1] * float64(b.ttl)))
		}
		l := take(i)
		start := time.Now()
		select {
		case <-l.Done():
			lost++
			losses = append(losses, fmt.Sprintf("lease %d (after a %.1f TTL gap) lost %v after acquisition: %v",
				i, lifeGapBefore(gaps, i), time.Since(start).Round(time.Millisecond), l.Err()))
		case <-time.After(hold):
			if err := l.Err(); err != nil {
				lost++
				losses = append(losses, fmt.Sprintf("lease %d: Done open but Err %v", i, err))
			} else {
				held++
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := l.Release(ctx)
		cancel()
		if err != nil && l.Err() == nil {
			t.Errorf("lease %d: Release: %v", i, err)
		}
	}

	// After the last gap, a loss from outside is still told.
	l := take(len(gaps) + 1)
	ended := time.Now()
	s.end(t, name)
	bound := b.ttl + time.Second
	var told time.Duration
	select {
	case <-l.Done():
		told = time.Since(ended)
		if err := l.Err(); !errors.Is(err, distsync.ErrLost) {
			t.Errorf("after the session ended from outside: Err() = %v, want ErrLost", err)
		}
	case <-time.After(bound):
		t.Errorf("session ended from outside: Done still open after %v", bound)
		told = -1
	}
	total := len(gaps) + 1
	t.Logf("reuse %s %-14s TTL %v: held %d / lost %d of %d leases over gaps %v TTL; loss from outside told after %v",
		b.name, k, b.ttl, held, lost, total, gaps, told.Round(time.Millisecond))
	for _, s := range losses {
		t.Error(s)
	}
}

func lifeGapBefore(gaps []float64, i int) float64 {
	if i == 0 {
		return 0
	}
	return gaps[i-1]
}

// leftoverCancels is how many cancelled acquisitions TestLifecycleLeftovers
// makes per primitive and backend: 100, or 1000 when DISTSYNC_SOAK is set.
func leftoverCancels() int {
	if os.Getenv("DISTSYNC_SOAK") != "" {
		return 1000
	}
	return 100
}

// TestLifecycleLeftovers cancels acquisitions of every kind on every
// backend at many moments: deadlines from 1µs to a few ms (before the
// enqueue reply), one at a time and ten at once; while waiting behind a
// holder; at the moment the holder releases (swept over small offsets);
// the waiter's session ended from outside while waiting; and its primitive
// and session closed while waiting. A cancelled call that returns within
// distsync.CancelGrace must have removed its entry from the server by then.
// Afterwards, with the sessions still open, the client's goroutines must be
// those of before the cancellations, and the server's watchers,
// subscriptions and entries of the name no more than before; once the
// sessions are closed, goroutines and the server's state (connections
// too) must be exactly what they were before the sessions were opened.
//
// The subtests run one at a time, and no other test runs meanwhile (none
// is parallel): goroutines and server-wide figures are counted for the
// whole process and server.
func TestLifecycleLeftovers(t *testing.T) {
	n := leftoverCancels()
	for _, mk := range lifeBackends {
		for _, k := range lifeKinds {
			t.Run(mk.name+"/"+string(k), func(t *testing.T) { testLeftovers(t, mk.make(t), k, n) })
		}
	}
}

// leftoverRun counts the outcomes of one leftovers run.
type leftoverRun struct {
	deadlines, waiting, grants, ends, closes int
	grantedAtCancel                          int            // cancelled at the grant, but the lease came first
	leftAtReturn                             int            // a cancelled call returned within CancelGrace, its entry still there
	worstOverrun                             time.Duration  // the latest a cancelled call returned after its context ended
	worstReacquire                           time.Duration  // the longest the holder took to acquire again after a grant race
	worstFailReturn                          time.Duration  // the latest a waiter returned after its session ended or closed
	kept                                     int            // waiters still waiting a TTL after their session ended
	closedStuck                              int            // waiters not returned a TTL after their session closed
	failErrs                                 map[string]int // the errors of waiters whose session ended or closed
}

func testLeftovers(t *testing.T, b lifeBackend, k lifeKind, n int) {
	name := lifeName(t, b, k)
	b.state(t, name) // the readers' own connections are up
	b.entries(t, name)
	g0 := goroutinesNow()
	s0 := lifeSteadyState(t, b, name)

	hs, ws := b.newSession(t), b.newSession(t)
	defer hs.close()
	defer ws.close()
	holder := hs.open(t, k.blocker(), name)
	waiter := ws.open(t, k, name)
	bg := context.Background()

	// Warm up, so that what the first acquisition starts for the life of
	// the session (a watch stream, a subscription) is in the baseline.
	for _, a := range []lifeAcquirer{holder, waiter} {
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		l, err := a.acquire(ctx)
		if err != nil {
			cancel()
			t.Fatalf("warm-up: %v", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("warm-up release: %v", err)
		}
		cancel()
	}
	lifeWaitEntries(t, b, name, 0)
	s1 := lifeSteadyState(t, b, name) // the warm-up's watches have ended
	g1 := goroutinesNow()

	r := leftoverRun{failErrs: map[string]int{}}
	hold := func() distsync.Lease {
		t.Helper()
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		start := time.Now()
		l, err := holder.acquire(ctx)
		if err != nil {
			t.Fatalf("holder: %v (after %v; a cancelled waiter's entry may block the name)", err, time.Since(start))
		}
		return l
	}
	release := func(l distsync.Lease) {
		t.Helper()
		ctx, cancel := context.WithTimeout(bg, 5*time.Second)
		defer cancel()
		if err := l.Release(ctx); err != nil && l.Err() == nil {
			t.Fatalf("release: %v", err)
		}
	}
	// cancelled checks the outcome of a waiter cancelled at ended while the
	// holder holds: an error wrapping the context's, and, if it returned
	// within CancelGrace, nothing of it left on the server.
	cancelled := func(what string, l distsync.Lease, err error, ended, returned time.Time, want error, holders int) {
		t.Helper()
		if l != nil {
			release(l)
			t.Fatalf("%s: acquired while another held", what)
		}
		if !errors.Is(err, want) {
			t.Fatalf("%s: got %v, want an error wrapping %v", what, err, want)
		}
		over := max(returned.Sub(ended), 0)
		r.worstOverrun = max(r.worstOverrun, over)
		if over <= distsync.CancelGrace {
			if got := b.entries(t, name); got != holders {
				r.leftAtReturn++
				if r.leftAtReturn <= 3 {
					t.Errorf("%s: returned %v after its context ended, but the server still has %d entries of the name, want %d",
						what, over.Round(time.Microsecond), got, holders)
				}
			}
		}
	}

	phase := time.Now()
	var took []string
	lap := func(name string) {
		took = append(took, fmt.Sprintf("%s %v", name, time.Since(phase).Round(time.Millisecond)))
		phase = time.Now()
	}
	// Failures and Closes need a session each: a tenth of the run, at
	// most 20.
	nFail := min(n/10, 20)
	nDeadline, nWaiting := (n-nFail)*4/9, (n-nFail)*2/9
	nGrant := n - nFail - nDeadline - nWaiting

	// Deadlines from 1µs to ~4ms, behind a holder: most end before the
	// enqueue reply, some while waiting.
	l := hold()
	nBurst := nDeadline / 2
	for i := range nDeadline - nBurst {
		d := time.Microsecond << (i % 13)
		ctx, cancel := context.WithTimeout(bg, d)
		dl, _ := ctx.Deadline()
		got, err := waiter.acquire(ctx)
		returned := time.Now()
		cancel()
		cancelled(fmt.Sprintf("deadline %v", d), got, err, dl, returned, context.DeadlineExceeded, 1)
		r.deadlines++
	}

	lap("deadlines")
	// The same deadlines, ten calls at a time through the one primitive:
	// once all have returned, each within CancelGrace, none may have left
	// anything.
	const burst = 10
	for i := 0; i < nBurst; i += burst {
		m := min(burst, nBurst-i)
		outs := make([]lifeOutcome, m)
		deadlines := make([]time.Time, m)
		var wg sync.WaitGroup
		for j := range m {
			d := time.Microsecond << ((i + j) % 13)
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(bg, d)
				defer cancel()
				deadlines[j], _ = ctx.Deadline()
				l, err := waiter.acquire(ctx)
				outs[j] = lifeOutcome{l, err, time.Now()}
			})
		}
		wg.Wait()
		late := 0 // calls that returned past CancelGrace, whose removal may go on in the background
		for j, o := range outs {
			if o.l != nil {
				release(o.l)
				t.Fatalf("burst: acquired while another held")
			}
			if !errors.Is(o.err, context.DeadlineExceeded) {
				t.Fatalf("burst: got %v, want an error wrapping %v", o.err, context.DeadlineExceeded)
			}
			over := max(o.at.Sub(deadlines[j]), 0)
			r.worstOverrun = max(r.worstOverrun, over)
			if over > distsync.CancelGrace {
				late++
			}
		}
		if got := b.entries(t, name); got-1 > late {
			r.leftAtReturn++
			if r.leftAtReturn <= 3 {
				t.Errorf("burst of %d deadlines: all returned, %d of them within CancelGrace of their deadline, but the server still has %d waiter entries of the name (and the holder), want at most %d",
					m, m-late, got-1, late)
			}
		}
		r.deadlines += m
	}

	lap("bursts")
	// Cancelled while waiting behind the holder.
	for range nWaiting {
		lifeWaitEntries(t, b, name, 1) // the holder alone: nothing else is left
		ctx, cancel := context.WithCancel(bg)
		res := lifeAcquireAsync(ctx, waiter)
		lifeWaitEntries(t, b, name, 2)
		ended := time.Now()
		cancel()
		o := <-res
		cancelled("cancel while waiting", o.l, o.err, ended, o.at, context.Canceled, 1)
		r.waiting++
	}

	lap("waiting")
	// Cancelled as the grant arrives: the holder releases and the waiter's
	// context is cancelled at an offset from -1ms to +3ms of it.
	offsets := []time.Duration{-time.Millisecond, -200 * time.Microsecond, 0, 20 * time.Microsecond,
		50 * time.Microsecond, 100 * time.Microsecond, 200 * time.Microsecond, 400 * time.Microsecond,
		700 * time.Microsecond, time.Millisecond, 1500 * time.Microsecond, 2 * time.Millisecond, 3 * time.Millisecond}
	for i := range nGrant {
		off := offsets[i%len(offsets)]
		lifeWaitEntries(t, b, name, 1) // the holder alone: nothing else is left
		ctx, cancel := context.WithCancel(bg)
		res := lifeAcquireAsync(ctx, waiter)
		lifeWaitEntries(t, b, name, 2)
		var wg sync.WaitGroup
		var cancelAt time.Time
		wg.Go(func() {
			if off > 0 {
				lifeSpin(off)
			}
			cancelAt = time.Now()
			cancel()
		})
		if off < 0 {
			lifeSpin(-off)
		}
		release(l)
		wg.Wait()
		o := <-res
		switch {
		case o.err == nil:
			r.grantedAtCancel++
			release(o.l)
		case !errors.Is(o.err, context.Canceled):
			t.Fatalf("cancel %v from the release: got %v, want an error wrapping context.Canceled", off, o.err)
		default:
			// Cancelled: nobody holds now, and what the waiter wrote is
			// gone if it returned within CancelGrace.
			cancelled(fmt.Sprintf("cancel %v from the release", off), nil, o.err, cancelAt, o.at, context.Canceled, 0)
		}
		r.grants++
		start := time.Now()
		l = hold()
		r.worstReacquire = max(r.worstReacquire, time.Since(start))
	}

	lap("grants")
	// Failures and Close while waiting, each on a session of its own:
	// the session ended from outside, or the primitive and session closed.
	for i := range nFail {
		lifeWaitEntries(t, b, name, 1) // the holder alone: nothing else is left
		fs := b.newSession(t)
		fa := fs.open(t, k, name)
		ctx, cancel := context.WithTimeout(bg, 20*time.Second)
		res := lifeAcquireAsync(ctx, fa)
		lifeWaitEntries(t, b, name, 2)
		ended := time.Now()
		what := "session ended from outside"
		if i%2 == 0 {
			fs.end(t, name)
			r.ends++
		} else {
			what = "primitive and session closed"
			if fa.close != nil {
				_ = fa.close()
			}
			fs.close()
			r.closes++
		}
		var o lifeOutcome
		select {
		case o = <-res:
		case <-time.After(b.ttl + time.Second):
			if i%2 == 1 {
				r.closedStuck++
				if r.closedStuck <= 2 {
					t.Errorf("%s while waiting: the call has not returned after %v; server entries of the name: %d; the call's goroutine:\n%s",
						what, b.ttl+time.Second, b.entries(t, name), goroutinesNow().matching("lifeAcquireAsync"))
				}
				select {
				case o = <-res:
				case <-time.After(30 * time.Second):
					t.Fatalf("%s while waiting: the call has not returned after 30s", what)
				}
				break
			}
			// The waiter goes on waiting in the session's successor
			// (ZooKeeper re-enqueues in its new session): then it must
			// still be cancellable, and leave nothing.
			r.kept++
			if got := b.entries(t, name); got != 2 {
				t.Errorf("%s while waiting: still waiting after %v with %d entries of the name on the server, want 2 (the holder and the waiter)",
					what, b.ttl+time.Second, got)
			}
			ended = time.Now()
			cancel()
			o = <-res
			if errors.Is(o.err, context.Canceled) {
				cancelled(what+", then cancelled", o.l, o.err, ended, o.at, context.Canceled, 1)
				o.err = nil // checked
			}
		}
		if o.l != nil {
			release(o.l)
			t.Fatalf("%s while waiting: acquired while another held", what)
		}
		if o.err != nil {
			r.worstFailReturn = max(r.worstFailReturn, o.at.Sub(ended))
			r.failErrs[o.err.Error()]++
		}
		cancel()
		if fa.close != nil {
			_ = fa.close()
		}
		fs.close()
	}
	release(l)
	lap("failures")

	// With the sessions still open: back to the warmed-up baseline.
	lifeWaitEntries(t, b, name, 0)
	s2, g2 := lifeSettle(t, b, name, s1, g1, false)
	lap("settle")
	// Close the primitives and sessions: back to before they were opened.
	for _, a := range []lifeAcquirer{holder, waiter} {
		if a.close != nil {
			if err := a.close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	}
	hs.close()
	ws.close()
	s3, g3 := lifeSettle(t, b, name, s0, g0, true)
	lap("close")

	t.Logf("leftovers %s %-14s %d cancels (deadline %d, waiting %d, at grant %d [lease won %d], session ended %d, closed %d); "+
		"left at return %d; worst overrun of a cancel %v; worst return after session end/close %v; worst re-acquire %v",
		b.name, k, r.deadlines+r.waiting+r.grants+r.ends+r.closes, r.deadlines, r.waiting, r.grants, r.grantedAtCancel,
		r.ends, r.closes, r.leftAtReturn, r.worstOverrun.Round(time.Microsecond), r.worstFailReturn.Round(time.Microsecond),
		r.worstReacquire.Round(time.Microsecond))
	t.Logf("leftovers %s %-14s session ended or closed while waiting: %d still waiting a TTL after the end (then cancelled), %d a TTL after the close; returned with %v",
		b.name, k, r.kept, r.closedStuck, r.failErrs)
	t.Logf("leftovers %s %-14s took: %s", b.name, k, strings.Join(took, ", "))
	t.Logf("leftovers %s %-14s open sessions: goroutines %d -> %d (%d new); server %v -> %v",
		b.name, k, len(g1), len(g2), len(g2.since(g1)), s1, s2)
	t.Logf("leftovers %s %-14s after Close:   goroutines %d -> %d (%d new); server %v -> %v",
		b.name, k, len(g0), len(g3), len(g3.since(g0)), s0, s3)
	if r.leftAtReturn > 0 {
		t.Errorf("%d times, cancelled calls returned within CancelGrace with their entries still on the server", r.leftAtReturn)
	}
}

// settle waits (up to 10s) for the server's state and the goroutines to
// come back to the baseline, and fails t with the difference if they do
// not. final compares the figures that only a closed client brings back.
func lifeSettle(t *testing.T, b lifeBackend, name string, base serverState, g goroutineSet, final bool) (serverState, goroutineSet) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := b.state(t, name)
		now := goroutinesNow()
		diff := base.diff(s, final)
		added := now.since(g)
		if len(diff) == 0 && len(added) == 0 {
			return s, now
		}
		if time.Now().After(deadline) {
			stage := "with the sessions open"
			if final {
				stage = "after Close"
			}
			if len(diff) > 0 {
				t.Errorf("%s: server state not back to baseline after 10s: %s", stage, strings.Join(diff, "; "))
			}
			if len(added) > 0 {
				t.Errorf("%s: %d goroutines more than the baseline after 10s:\n%s", stage, len(added), summarizeGoroutines(added))
			}
			return s, now
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lifeSteadyState reads the server's state until it is the same three
// times in a row, 50ms apart (for at most 5s), so that a baseline does not
// include what a client is still in the middle of removing.
func lifeSteadyState(t *testing.T, b lifeBackend, name string) serverState {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	last, same := b.state(t, name), 0
	for same < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		s := b.state(t, name)
		if len(last.diff(s, true)) == 0 {
			same++
		} else {
			last, same = s, 0
		}
	}
	return last
}

type lifeOutcome struct {
	l   distsync.Lease
	err error
	at  time.Time
}

// lifeAcquireAsync starts a.acquire(ctx) and delivers its outcome.
func lifeAcquireAsync(ctx context.Context, a lifeAcquirer) <-chan lifeOutcome {
	res := make(chan lifeOutcome, 1)
	go func() {
		l, err := a.acquire(ctx)
		res <- lifeOutcome{l, err, time.Now()}
	}()
	return res
}

// lifeWaitEntries waits until the server has n entries (holders and waiters)
// of name, polling every millisecond for up to 10s.
func lifeWaitEntries(t *testing.T, b lifeBackend, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := b.entries(t, name)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d entries (holders and waiters) after 10s, want %d", name, got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// spin waits d more precisely than time.Sleep does for microseconds.
func lifeSpin(d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
	}
}
