package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/go-zookeeper/zk"
)

// zkCancelCase is one primitive under TestZooKeeperCancelLeavesNothing:
// hold puts it in a state where acquire must wait (the holders' leases),
// acquire is the call that gets cancelled, and try is the acquisition that
// must succeed at once after the holders release.
type zkCancelCase struct {
	name    string
	hold    func(ctx context.Context, t *testing.T, s *zksync.Session, name string) []distsync.Lease
	acquire func(s *zksync.Session, name string) func(ctx context.Context) (distsync.Lease, error)
	try     func(ctx context.Context, t *testing.T, s *zksync.Session, name string) (distsync.Lease, error)
}

func zkCancelCases() []zkCancelCase {
	// must turns an acquisition's failure into a panic: hold runs before
	// anything is measured, and a panic fails the test with its trace.
	must := func(l distsync.Lease, err error) distsync.Lease {
		if err != nil {
			panic(err)
		}
		return l
	}
	mutex := func(s *zksync.Session, name string) *zksync.Mutex {
		m, err := zkNewMutex(s, name)
		if err != nil {
			panic(err)
		}
		return m
	}
	rw := func(s *zksync.Session, name string) *zksync.RWMutex {
		m, err := zkNewRWMutex(s, name)
		if err != nil {
			panic(err)
		}
		return m
	}
	sem := func(s *zksync.Session, name string) *zksync.Semaphore {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m, err := zkNewSemaphore(ctx, s, name, 2)
		if err != nil {
			panic(err)
		}
		return m
	}
	elect := func(s *zksync.Session, name string) *zksync.Election {
		e, err := zkNewElection(s, name)
		if err != nil {
			panic(err)
		}
		return e
	}
	return []zkCancelCase{{
		name: "Mutex",
		hold: func(ctx context.Context, t *testing.T, s *zksync.Session, name string) []distsync.Lease {
			return []distsync.Lease{must(mutex(s, name).Lock(ctx))}
		},
		acquire: func(s *zksync.Session, name string) func(context.Context) (distsync.Lease, error) {
			return mutex(s, name).Lock
		},
		try: func(ctx context.Context, t *testing.T, s *zksync.Session, name string) (distsync.Lease, error) {
			return mutex(s, name).TryLock(ctx)
		},
	}, {
		name: "RWMutexWrite", // held by a reader
		hold: func(ctx context.Context, t *testing.T, s *zksync.Session, name string) []distsync.Lease {
			return []distsync.Lease{must(rw(s, name).RLock(ctx))}
		},
		acquire: func(s *zksync.Session, name string) func(context.Context) (distsync.Lease, error) {
			return rw(s, name).Lock
		},
		try: func(ctx context.Context, t *testing.T, s *zksync.Session, name string) (distsync.Lease, error) {
			return rw(s, name).TryLock(ctx)
		},
	}, {
		name: "RWMutexRead", // held by a writer
		hold: func(ctx context.Context, t *testing.T, s *zksync.Session, name string) []distsync.Lease {
			return []distsync.Lease{must(rw(s, name).Lock(ctx))}
		},
		acquire: func(s *zksync.Session, name string) func(context.Context) (distsync.Lease, error) {
			return rw(s, name).RLock
		},
		try: func(ctx context.Context, t *testing.T, s *zksync.Session, name string) (distsync.Lease, error) {
			return rw(s, name).TryRLock(ctx)
		},
	}, {
		name: "Semaphore", // limit 2, both permits held
		hold: func(ctx context.Context, t *testing.T, s *zksync.Session, name string) []distsync.Lease {
			m := sem(s, name)
			return []distsync.Lease{must(m.Acquire(ctx)), must(m.Acquire(ctx))}
		},
		acquire: func(s *zksync.Session, name string) func(context.Context) (distsync.Lease, error) {
			return sem(s, name).Acquire
		},
		try: func(ctx context.Context, t *testing.T, s *zksync.Session, name string) (distsync.Lease, error) {
			return sem(s, name).TryAcquire(ctx)
		},
	}, {
		name: "Election",
		hold: func(ctx context.Context, t *testing.T, s *zksync.Session, name string) []distsync.Lease {
			l, err := elect(s, name).Campaign(ctx, []byte("holder"))
			return []distsync.Lease{must(l, err)}
		},
		acquire: func(s *zksync.Session, name string) func(context.Context) (distsync.Lease, error) {
			e := elect(s, name)
			return func(ctx context.Context) (distsync.Lease, error) {
				l, err := e.Campaign(ctx, []byte("waiter"))
				if err != nil {
					return nil, err
				}
				return l, nil
			}
		},
		// An Election has no try: with no other candidate left, a
		// Campaign leads at once, within a short deadline.
		try: func(ctx context.Context, t *testing.T, s *zksync.Session, name string) (distsync.Lease, error) {
			ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			l, err := elect(s, name).Campaign(ctx, []byte("next"))
			if err != nil {
				return nil, err
			}
			return l, nil
		},
	}}
}

// zkCancelCount is how many cancelled acquisitions each primitive gets in
// each phase (sequential, then concurrent): about 5 s per primitive on two
// cores with the race detector.
const zkCancelCount = 1000

// TestZooKeeperCancelLeavesNothing cancels acquisitions of every primitive
// at moments spread over the first 2 ms of the call (the create in flight,
// the watch and listing in flight, waiting), while another session holds.
// When ZooKeeper answers, a cancelled call must return only once its node is
// gone: right after each call returns, the server (read through another
// connection) has no node but the holders'. Then the same is checked with
// concurrent calls, after all have returned. The waiting session's watches
// (read with the four-letter word wchc), the server's connections (cons)
// and the client's goroutines must be back to the baseline, and after the
// holders release another session acquires at once.
func TestZooKeeperCancelLeavesNothing(t *testing.T) {
	n := zkCancelCount
	for _, c := range zkCancelCases() {
		t.Run(c.name, func(t *testing.T) {
			testZooKeeperCancel(t, c, n)
		})
	}
}

func testZooKeeperCancel(t *testing.T, c zkCancelCase, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := t.Name()
	hs, ws, ts := zkSession(t), zkSession(t), zkSession(t)
	holders := c.hold(ctx, t, hs, name)
	var held []string
	for _, l := range holders {
		p := l.(interface{ Path() string }).Path()
		held = append(held, p[strings.LastIndexByte(p, '/')+1:])
	}
	slices.Sort(held)
	acquire := c.acquire(ws, name)
	admin := zkAdmin(t)
	nodePath, err := zksync.NodePath(zksync.DefaultPrefix, name)
	if err != nil {
		t.Fatal(err)
	}
	children := func() []string {
		ch, _, err := admin.Children(nodePath)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ch)
		return ch
	}
	if got := children(); !slices.Equal(got, held) {
		t.Fatalf("before: nodes %q, want the holders' %q", got, held)
	}

	baseWatches := zkWatchedPaths(t, ws.SessionID())
	baseConns := zkConnections(t)
	baseG := runtime.NumGoroutine()

	// delay spreads the cancellation over 0 to 2 ms after the call.
	delay := func(i int) time.Duration { return time.Duration(i%21) * 100 * time.Microsecond }
	// one makes cancelled acquisition i and returns how long it went on
	// after its context ended.
	var (
		overMu    sync.Mutex
		worstOver time.Duration
	)
	one := func(i int) (time.Duration, error) {
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		cancelled := make(chan time.Time, 1)
		timer := time.AfterFunc(delay(i), func() {
			cancelled <- time.Now()
			ccancel()
		})
		defer timer.Stop()
		l, err := acquire(cctx)
		returned := time.Now()
		if err == nil {
			_ = l.Release(ctx)
			return 0, fmt.Errorf("acquisition %d succeeded while held", i)
		}
		if !errors.Is(err, context.Canceled) || !errors.Is(err, distsync.ErrNotAcquired) {
			return 0, fmt.Errorf("acquisition %d: got %v, want ErrNotAcquired and context.Canceled", i, err)
		}
		over := returned.Sub(<-cancelled)
		overMu.Lock()
		worstOver = max(worstOver, over)
		overMu.Unlock()
		return over, nil
	}

	// Sequential: the server is read right after each call returns. A
	// call that used up its grace (distsync.CancelGrace after its context
	// ended: ZooKeeper did not answer in time on this loaded machine) may
	// leave its node to the background; it must be rare, and the node must
	// go soon after.
	start := time.Now()
	var leftAt, graceOut []int
	for i := range n {
		over, err := one(i)
		if err != nil {
			t.Fatal(err)
		}
		got := children()
		if over >= distsync.CancelGrace {
			graceOut = append(graceOut, i)
			if !slices.Equal(got, held) {
				t.Logf("cancelled call %d returned %v after its context ended, leaving %d nodes to the background", i, over, len(got)-len(held))
				waitZKChildren(t, children, held)
			}
			continue
		}
		if !slices.Equal(got, held) {
			leftAt = append(leftAt, i)
			if len(leftAt) <= 3 {
				t.Errorf("right after cancelled call %d (cancel at %v) returned, %v after its context ended: nodes %q, want only the holders' %q", i, delay(i), over, got, held)
			}
			waitZKChildren(t, children, held)
		}
	}
	seq := time.Since(start)
	if len(leftAt) > 0 {
		t.Errorf("%d of %d cancelled calls returned within their grace before their node was gone", len(leftAt), n)
	}
	if len(graceOut) > n/20 {
		t.Errorf("%d of %d cancelled calls went on for CancelGrace (%v) or more after their context ended", len(graceOut), n, distsync.CancelGrace)
	}

	// Concurrent: 8 callers, the server read once all have returned.
	start = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if _, err := one(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	conc := time.Since(start)
	if got := children(); !slices.Equal(got, held) {
		t.Errorf("after %d concurrent cancelled calls returned (the slowest %v after its context ended): %d nodes %q, want only the holders' %q", n, worstOver, len(got), got, held)
	}
	leftNodes := len(children()) - len(held)

	// Watches: the waiting session may still watch a holder's node (a
	// watch ZooKeeper removes when that node goes; go-zookeeper cannot
	// remove a watch), and nothing else.
	afterWatches := zkWatchedPaths(t, ws.SessionID())
	for _, p := range afterWatches {
		if !slices.Contains(held, p[strings.LastIndexByte(p, '/')+1:]) {
			t.Errorf("after the cancels the waiting session watches %s, which is not a holder's node", p)
		}
	}
	// go-zookeeper keeps a channel per watch it set until the watch
	// fires: a cancelled waiter must not add one per wait on a node that
	// stays (here the holders').
	clientWatches := zkClientWatches(ws.Conn())
	if clientWatches > len(held) {
		t.Errorf("after the cancels the waiting session's client holds %d watch channels, want at most one per holder node (%d)", clientWatches, len(held))
	}
	afterConns := zkConnections(t)
	if afterConns != baseConns {
		t.Errorf("server connections: %d after the cancels, %d before", afterConns, baseConns)
	}
	g := zkSettledGoroutines(baseG)
	if g > baseG {
		t.Errorf("client goroutines: %d after the cancels, %d before", g, baseG)
	}

	// Release: another session acquires at once, and no watch of the
	// waiting session is left.
	for _, l := range holders {
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tstart := time.Now()
	l, err := c.try(ctx, t, ts, name)
	if err != nil {
		t.Fatalf("acquisition right after the holders released: %v (nodes %q)", err, children())
	}
	tryTook := time.Since(tstart)
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	finalWatches := zkWatchedPaths(t, ws.SessionID())
	if len(finalWatches) > len(baseWatches) {
		t.Errorf("waiting session's watches after the release: %q, before the cancels: %q", finalWatches, baseWatches)
	}
	t.Logf("%s: %d sequential cancels in %v (%d used up the grace), %d concurrent (%d callers) in %v; slowest return %v after the cancel; after them: %d nodes left (baseline 0), waiting session watches %d paths %q (baseline %d) with %d client channels, server connections %d (baseline %d), goroutines %d (baseline %d); after release: acquisition in %v, waiting session watches %d",
		c.name, n, seq.Round(time.Millisecond), len(graceOut), n, workers, conc.Round(time.Millisecond), worstOver.Round(time.Microsecond), leftNodes, len(afterWatches), afterWatches, len(baseWatches), clientWatches, afterConns, baseConns, g, baseG, tryTook.Round(time.Microsecond), len(finalWatches))
}

// waitZKChildren waits up to 5 s for the children to be want.
func waitZKChildren(t *testing.T, children func() []string, want []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(children(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("nodes %q still there 5 s later, want %q", children(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// zkSettledGoroutines waits up to a second for the goroutine count to fall
// to base (a goroutine that has delivered its result may not have exited
// yet) and returns the last count.
func zkSettledGoroutines(base int) int {
	deadline := time.Now().Add(time.Second)
	for {
		g := runtime.NumGoroutine()
		if g <= base || time.Now().After(deadline) {
			return g
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// zkClientWatches counts the watch channels go-zookeeper keeps for c, one
// per watch request whose watch has not fired. They are not exported: the
// count is read from the client's fields (go-zookeeper v1.0.4), under its
// own lock.
func zkClientWatches(c *zk.Conn) int {
	v := reflect.ValueOf(c).Elem()
	mu := (*sync.Mutex)(unsafe.Pointer(v.FieldByName("watchersLock").UnsafeAddr()))
	mu.Lock()
	defer mu.Unlock()
	m := v.FieldByName("watchers")
	n := 0
	iter := m.MapRange()
	for iter.Next() {
		n += iter.Value().Len()
	}
	return n
}

// zk4lw sends a four-letter word to the test server and returns the answer.
func zk4lw(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(cmd)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	if strings.Contains(string(b), "is not executed because it is not in the whitelist") {
		t.Fatalf("%s: %s", cmd, b)
	}
	return string(b)
}

// zkWatchedPaths returns the paths session sid watches on the test server,
// from the four-letter word wchc ("0x<sid>" followed by indented paths).
func zkWatchedPaths(t *testing.T, sid int64) []string {
	t.Helper()
	return parseWchc(zk4lw(t, zkServer.Addr(), "wchc"))[fmt.Sprintf("0x%x", sid)]
}

func parseWchc(out string) map[string][]string {
	m := map[string][]string{}
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "0x"):
			cur = strings.TrimSpace(line)
			m[cur] = m[cur][:0:0]
		case strings.HasPrefix(strings.TrimSpace(line), "/") && cur != "":
			m[cur] = append(m[cur], strings.TrimSpace(line))
		}
	}
	return m
}

// zkConnections counts the client connections the test server lists with
// cons (the four-letter word's own connection included).
func zkConnections(t *testing.T) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(zk4lw(t, zkServer.Addr(), "cons"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "/") {
			n++
		}
	}
	return n
}

// TestZooKeeperCancelAsGranted cancels a waiting Lock at moments spread
// around the holder's release (from 1 ms before to 1 ms after), so that the
// grant and the cancellation race. Either outcome is allowed: the waiter
// holds (the grant won), or it fails with the context's error; then its
// node must be gone when Lock returns, and another session's TryLock
// succeeds at once.
func TestZooKeeperCancelAsGranted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := t.Name()
	holder := zkMutex(t, zkSession(t), name)
	waiter := zkMutex(t, zkSession(t), name)
	other := zkMutex(t, zkSession(t), name)
	const trials = 100
	var granted, cancelled, late int
	for i := range trials {
		h, err := holder.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithCancel(ctx)
		type result struct {
			l   distsync.Lease
			err error
			at  time.Time
		}
		got := make(chan result, 1)
		go func() {
			l, err := waiter.Lock(wctx)
			got <- result{l, err, time.Now()}
		}()
		waitKeys(t, zkKeys, name, 2)
		// offset < 0: the cancellation comes first, the release -offset
		// later; offset >= 0: the release begins, the cancellation
		// offset later.
		offset := time.Duration(i%21-10) * 100 * time.Microsecond
		released := make(chan error, 1)
		var cancelledAt time.Time
		if offset < 0 {
			cancelledAt = time.Now()
			wcancel()
			time.Sleep(-offset)
			go func() { released <- h.Release(ctx) }()
		} else {
			go func() { released <- h.Release(ctx) }()
			time.Sleep(offset)
			cancelledAt = time.Now()
			wcancel()
		}
		r := <-got
		if err := <-released; err != nil {
			t.Fatal(err)
		}
		switch {
		case r.err == nil:
			granted++
			if err := r.l.Err(); err != nil {
				t.Fatalf("trial %d: granted lease already ended: %v", i, err)
			}
			if err := r.l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		case errors.Is(r.err, context.Canceled) && errors.Is(r.err, distsync.ErrNotAcquired):
			cancelled++
			if r.at.Sub(cancelledAt) >= distsync.CancelGrace {
				late++
				waitKeys(t, zkKeys, name, 0)
				break
			}
			if keys := zkKeys(t, name); len(keys) != 0 {
				t.Fatalf("trial %d (cancel %v after the release began): Lock returned %v after its context ended, leaving nodes %q", i, offset, r.at.Sub(cancelledAt), keys)
			}
			l, err := other.TryLock(ctx)
			if err != nil {
				t.Fatalf("trial %d: TryLock right after the cancelled Lock returned: %v", i, err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("trial %d: Lock: %v", i, r.err)
		}
		wcancel()
	}
	t.Logf("%d trials: %d granted, %d cancelled (%d used up the grace)", trials, granted, cancelled, late)
	if late > trials/20 {
		t.Errorf("%d of %d cancelled Locks went on for CancelGrace or more", late, trials)
	}
}

// TestZooKeeperMutedCallsBounded drops every reply from the server (the
// proxy keeps the connection open and passes requests on), and checks that
// no call outlives its context by more than CancelGrace plus a small
// margin: Lock with a create in flight, TryLock, Release, Leader. Close
// must return within a few seconds. Once the session is closed the server
// has deleted what the unanswered requests created.
func TestZooKeeperMutedCallsBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := t.Name()
	holder, err := zkMutex(t, zkSession(t), name).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release(ctx)
	p := distsynctest.NewProxy(t, zkServer.Addr())
	s := zkSessionTo(t, p.Addr())
	m := zkMutex(t, s, name)
	held, err := zkMutex(t, s, name+"-held").Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := zkElection(t, s, name+"-election")

	const d = 300 * time.Millisecond
	bound := d + distsync.CancelGrace + 100*time.Millisecond
	p.Mute()
	check := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, d)
		defer ccancel()
		start := time.Now()
		err := f(cctx)
		took := time.Since(start)
		if took > bound {
			t.Errorf("%s with replies dropped took %v, want at most %v (context %v)", what, took, bound, d)
		}
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s with replies dropped: %v, want an error wrapping the context's", what, err)
		}
		t.Logf("%s with replies dropped: returned after %v: %v", what, took.Round(time.Millisecond), err)
	}
	check("Lock", func(ctx context.Context) error {
		_, err := m.Lock(ctx)
		return err
	})
	check("TryLock", func(ctx context.Context) error {
		_, err := m.TryLock(ctx)
		return err
	})
	check("Release", func(ctx context.Context) error { return held.Release(ctx) })
	check("Leader", func(ctx context.Context) error {
		_, err := e.Leader(ctx)
		return err
	})
	start := time.Now()
	_ = s.Close()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close with replies dropped took %v", took)
	} else {
		t.Logf("Close with replies dropped: %v", took.Round(time.Millisecond))
	}
	// The close request reached the server: the session's nodes go.
	waitKeys(t, zkKeys, name, 1)
	waitKeys(t, zkKeys, name+"-held", 0)
}
