package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/distsync/distsync/internal/etcdq"
	goredis "github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// The fault sweep cuts one client off from its backend at many moments of
// an acquisition's life, from before the enqueue reply to well after the
// lease is held, and checks P2 and P11 at each:
//
//	(a) the cut-off holder's Done closes before any other client's
//	    acquisition returns;
//	(b) every call of the cut-off client (acquire, Release) returns within
//	    its context's deadline plus sweepSlack, plus how late the process's
//	    own timers ran meanwhile (see lagMonitor).
//
// The cut is a blackhole (the connection stays open and passes nothing, as
// a network that drops packets) or a close.

// sweepOffsets are the moments of the cut, after the acquire call starts.
var sweepOffsets = []time.Duration{
	0, 200 * time.Microsecond, 500 * time.Microsecond, time.Millisecond,
	1500 * time.Microsecond, 2 * time.Millisecond, 3 * time.Millisecond, 4 * time.Millisecond,
	6 * time.Millisecond, 8 * time.Millisecond, 12 * time.Millisecond, 20 * time.Millisecond,
	35 * time.Millisecond, 60 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond,
	350 * time.Millisecond, 600 * time.Millisecond, time.Second, 1500 * time.Millisecond,
}

// sweepSlack is how long past its context's deadline a call may return
// (distsync.CancelGrace and 100 ms more), on top of the lag of the
// process's timers meanwhile.
const sweepSlack = 200 * time.Millisecond

// sweepAcquireTimeout is the deadline of the cut-off client's acquire call.
const sweepAcquireTimeout = time.Second

// A sweepBackend opens sessions whose every connection goes through addr.
type sweepBackend struct {
	life   lifeBackend
	target string // the server address the proxy forwards to
	// through opens a session on a new client that dials only addr.
	through func(t *testing.T, addr string) *lifeSession
	// bystander opens a session with a longer TTL, for the clients that
	// compete with the cut-off one: they are not under test, and a short
	// TTL would make them report conservative losses on a loaded machine.
	bystander func(t *testing.T) *lifeSession
}

func sweepBackends(t *testing.T) []sweepBackend {
	return []sweepBackend{
		sweepBackendOf(etcdLifeBackend(t), etcdServer.Endpoints()[0], etcdSweepSession, 5*time.Second),
		sweepBackendOf(redisLifeBackend(t), redisServer.Addr(), redisSweepSession, 3*redisTTL),
		sweepBackendOf(zkLifeBackend(t), zkServer.Addr(), zkSweepSession, zkTestTimeout),
	}
}

// sweepBackendOf builds a sweepBackend from one session opener: the
// cut-off client dials the proxy with the backend's lifecycle TTL, the
// bystanders dial the server with bystanderTTL.
func sweepBackendOf(life lifeBackend, target string, open func(t *testing.T, addr string, ttl time.Duration) *lifeSession, bystanderTTL time.Duration) sweepBackend {
	return sweepBackend{
		life:      life,
		target:    target,
		through:   func(t *testing.T, addr string) *lifeSession { return open(t, addr, life.ttl) },
		bystander: func(t *testing.T) *lifeSession { return open(t, target, bystanderTTL) },
	}
}

// etcdSweepSession is an etcd Session on a client of addr only.
func etcdSweepSession(t *testing.T, addr string, ttl time.Duration) *lifeSession {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{addr},
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdsync.NewSession(ctx, c, etcdsync.WithTTL(ttl))
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	var once sync.Once
	closeAll := func() {
		once.Do(func() {
			// A Session cut off cannot revoke its lease: its Close
			// would wait a second for that, so only the client is
			// closed, which ends the Session's goroutines.
			etcdq.Of(s).Orphan()
			_ = c.Close()
		})
	}
	t.Cleanup(closeAll)
	return &lifeSession{
		open:  func(t *testing.T, k lifeKind, name string) lifeAcquirer { return etcdLifeAcquirer(t, s, k, name) },
		close: closeAll,
	}
}

func redisSweepSession(t *testing.T, addr string, ttl time.Duration) *lifeSession {
	c := goredis.NewClient(&goredis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redissync.NewSession(ctx, c, redissync.WithTTL(ttl))
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	var once sync.Once
	closeAll := func() {
		once.Do(func() {
			_ = s.Close()
			_ = c.Close()
		})
	}
	t.Cleanup(closeAll)
	return &lifeSession{
		open:  func(t *testing.T, k lifeKind, name string) lifeAcquirer { return redisLifeAcquirer(t, s, k, name) },
		close: closeAll,
	}
}

func zkSweepSession(t *testing.T, addr string, timeout time.Duration) *lifeSession {
	s := zkSessionTo(t, addr, zksync.WithTTL(timeout))
	return &lifeSession{
		open:  func(t *testing.T, k lifeKind, name string) lifeAcquirer { return zkLifeAcquirer(t, s, k, name) },
		close: func() { _ = s.Close() },
	}
}

// A sweepTrial is one cut at one moment.
type sweepTrial struct {
	offset    time.Duration
	contended bool // the cut-off client queues behind a holder that leaves at 300 ms
	close     bool // close the connections instead of blackholing them
}

// A sweepResult is what one trial saw.
type sweepResult struct {
	trial      sweepTrial
	acquired   bool          // the cut-off client's acquire succeeded
	toldFirst  bool          // its Done was closed when another client acquired
	overrun    time.Duration // worst lateness of its calls past their deadline
	lag        time.Duration // worst lateness of the process's timers meanwhile
	violations []string
}

// TestFaultSweep runs the sweep on every backend and primitive kind. In
// `make test` the Mutex gets every offset with and without contention,
// blackholed and closed; the other kinds get every offset once, blackholed,
// alternating contention. DISTSYNC_SOAK runs the full matrix on every kind.
func TestFaultSweep(t *testing.T) {
	full := os.Getenv("DISTSYNC_SOAK") != ""
	for _, b := range sweepBackends(t) {
		for _, k := range lifeKinds {
			t.Run(b.life.name+"/"+string(k), func(t *testing.T) {
				var trials []sweepTrial
				for i, off := range sweepOffsets {
					switch {
					case full || k == lifeMutex:
						for _, cl := range []bool{false, true} {
							trials = append(trials, sweepTrial{offset: off, close: cl}, sweepTrial{offset: off, contended: true, close: cl})
						}
					default:
						trials = append(trials, sweepTrial{offset: off, contended: i%2 == 1})
					}
				}
				results := runSweep(t, b, k, trials)
				reportSweep(t, b.life.name, k, results)
			})
		}
	}
}

// TestFaultSweepCatchesLateLoss shows that the sweep's check (a) fires: a
// "holder" that never looks at its Done (it reports a lease that is never
// lost) is caught when another client acquires after the cut.
func TestFaultSweepCatchesLateLoss(t *testing.T) {
	b := sweepBackends(t)[0]
	trials := []sweepTrial{{offset: 50 * time.Millisecond}, {offset: 200 * time.Millisecond}}
	results := runSweepWith(t, b, lifeMutex, trials, sweepControl{lease: func(l distsync.Lease) distsync.Lease { return deafLease{l} }})
	for _, r := range results {
		if r.toldFirst || !r.acquired {
			t.Fatalf("control %+v: the check did not fire on a holder that is never told (acquired %v, told first %v)", r.trial, r.acquired, r.toldFirst)
		}
	}
}

// TestFaultSweepCatchesOverrun shows that the sweep's check (b) fires, and
// that the timer lag it allows for does not hide a late return: an acquire
// call that returns 600 ms after its own, blackholed, one is caught.
func TestFaultSweepCatchesOverrun(t *testing.T) {
	b := sweepBackends(t)[0]
	trials := []sweepTrial{{offset: 0}, {offset: 0, contended: true}}
	results := runSweepWith(t, b, lifeMutex, trials, sweepControl{acquireDelay: 600 * time.Millisecond})
	for _, r := range results {
		if !slices.ContainsFunc(r.violations, func(v string) bool { return strings.Contains(v, "past its") }) {
			t.Fatalf("control %+v: an acquire 600 ms late was not caught (worst overrun %v, violations %q)", r.trial, r.overrun, r.violations)
		}
	}
}

// A sweepControl makes the cut-off client misbehave, to show that the
// checks fire: lease, if set, replaces its lease; acquireDelay delays the
// return of its acquire call.
type sweepControl struct {
	lease        func(distsync.Lease) distsync.Lease
	acquireDelay time.Duration
}

// deafLease hides its lease's loss: Done never closes.
type deafLease struct{ distsync.Lease }

func (deafLease) Done() <-chan struct{} { return nil }

func runSweep(t *testing.T, b sweepBackend, k lifeKind, trials []sweepTrial) []sweepResult {
	return runSweepWith(t, b, k, trials, sweepControl{})
}

// runSweepWith runs trials at once, each on a name, proxy and sessions of
// its own; ctl makes the cut-off client misbehave (the controls).
func runSweepWith(t *testing.T, b sweepBackend, k lifeKind, trials []sweepTrial, ctl sweepControl) []sweepResult {
	lag := startLagMonitor()
	defer lag.stop()
	results := make([]sweepResult, len(trials))
	for lo := 0; lo < len(trials); lo += sweepBatch {
		var wg sync.WaitGroup
		for i := lo; i < min(lo+sweepBatch, len(trials)); i++ {
			tr := trials[i]
			name := fmt.Sprintf("%s-%d", lifeName(t, b.life, k), i)
			p := distsynctest.NewProxy(t, b.target)
			cut := b.through(t, p.Addr())
			mine := cut.open(t, k, name)
			if d := ctl.acquireDelay; d > 0 {
				inner := mine.acquire
				mine.acquire = func(ctx context.Context) (distsync.Lease, error) {
					l, err := inner(ctx)
					time.Sleep(d)
					return l, err
				}
			}
			// Cleanups run last in, first out: the connection is back
			// before the primitive's own cleanup talks to the server.
			t.Cleanup(p.Heal)
			other := b.bystander(t).open(t, k.blocker(), name)
			var first *lifeAcquirer
			if tr.contended {
				a := b.bystander(t).open(t, k.blocker(), name)
				first = &a
			}
			wg.Go(func() {
				results[i] = sweepOne(t, tr, p, lag, mine, other, first, ctl.lease)
			})
		}
		wg.Wait()
	}
	return results
}

// sweepBatch is how many trials run at once: enough to keep the sweep
// short, few enough that the clients' own timers are not starved on a
// small machine under the race detector.
const sweepBatch = 20

func sweepOne(t *testing.T, tr sweepTrial, p *distsynctest.Proxy, lag *lagMonitor, mine, other lifeAcquirer, first *lifeAcquirer, wrap func(distsync.Lease) distsync.Lease) sweepResult {
	r := sweepResult{trial: tr}
	bg := context.Background()
	fail := func(format string, args ...any) { r.violations = append(r.violations, fmt.Sprintf(format, args...)) }
	late := func(call string, start time.Time, timeout time.Duration) {
		now := time.Now()
		over := now.Sub(start) - timeout
		r.overrun = max(r.overrun, over)
		behind := lag.worst(start, now)
		r.lag = max(r.lag, behind)
		if over > sweepSlack+behind {
			fail("%s returned %v past its %v deadline (the process's timers were up to %v late meanwhile)",
				call, over.Round(time.Millisecond), timeout, behind.Round(time.Millisecond))
		}
	}
	if first != nil {
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		fl, err := first.acquire(ctx)
		cancel()
		if err != nil {
			fail("first holder: %v", err)
			return r
		}
		// The first holder leaves while the cut-off client waits, at a
		// moment that falls before, at or after the cut.
		time.AfterFunc(300*time.Millisecond, func() { _ = fl.Release(bg) })
	}
	start := time.Now()
	time.AfterFunc(tr.offset, func() {
		if tr.close {
			p.Cut()
		} else {
			p.Blackhole()
		}
	})
	ctx, cancel := context.WithTimeout(bg, sweepAcquireTimeout)
	l, err := mine.acquire(ctx)
	cancel()
	late(fmt.Sprintf("acquire (%v)", err), start, sweepAcquireTimeout)
	if err != nil && !errors.Is(err, distsync.ErrNotAcquired) && !errors.Is(err, distsync.ErrLost) &&
		!errors.Is(err, distsync.ErrUnavailable) && !errors.Is(err, distsync.ErrClosed) {
		fail("acquire: error wraps no expected sentinel: %v", err)
	}
	if n := len(distsynctest.Sentinels(err)); err != nil && n != 1 {
		fail("acquire: error wraps %d sentinels, want exactly 1: %v", n, err)
	}
	if err == nil {
		r.acquired = true
		if wrap != nil {
			l = wrap(l)
		}
	}
	// Another client now competes; when it acquires, the cut-off holder
	// must already have been told.
	octx, ocancel := context.WithTimeout(bg, 30*time.Second)
	ol, oerr := other.acquire(octx)
	ocancel()
	if oerr != nil {
		fail("other client: %v", oerr)
		return r
	}
	if l != nil {
		select {
		case <-l.Done():
			r.toldFirst = true
			if !errors.Is(l.Err(), distsync.ErrLost) {
				fail("cut-off holder's Err: got %v, want ErrLost", l.Err())
			}
		default:
			fail("another client acquired while the cut-off holder's Done was still open")
		}
		rctx, rcancel := context.WithTimeout(bg, 300*time.Millisecond)
		rstart := time.Now()
		if err := l.Release(rctx); err != nil && len(distsynctest.Sentinels(err)) != 1 {
			fail("Release: error wraps %d sentinels, want exactly 1: %v", len(distsynctest.Sentinels(err)), err)
		}
		rcancel()
		late("Release", rstart, 300*time.Millisecond)
	}
	_ = ol.Release(bg)
	return r
}

// reportSweep fails t on violations and logs one summary line.
func reportSweep(t *testing.T, backend string, k lifeKind, results []sweepResult) {
	t.Helper()
	held, told := 0, 0
	var worst, lag time.Duration
	var bad []string
	for _, r := range results {
		if r.acquired {
			held++
			if r.toldFirst {
				told++
			}
		}
		worst = max(worst, r.overrun)
		lag = max(lag, r.lag)
		for _, v := range r.violations {
			bad = append(bad, fmt.Sprintf("offset %v contended=%v close=%v: %s", r.trial.offset, r.trial.contended, r.trial.close, v))
		}
	}
	sort.Strings(bad)
	t.Logf("fault sweep %s %s: %d trials, %d held at the cut, told before the next holder in %d of %d; worst overrun past a deadline %v (timers up to %v late)",
		backend, k, len(results), held, told, held, worst.Round(time.Millisecond), lag.Round(time.Millisecond))
	if len(bad) > 0 {
		t.Errorf("%d violations:\n%s", len(bad), strings.Join(bad, "\n"))
	}
}
