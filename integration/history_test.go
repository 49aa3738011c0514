package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/distsync/distsync/internal/etcdq"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// This file is the fenced-history workload of issue 7: clients loop
// acquire, read-modify-write a counter, release, while a nemesis injects
// faults (one test per backend: history_etcd_test.go,
// history_redis_test.go, history_zookeeper_test.go); every operation is
// recorded and the histories are checked with porcupine and directly
// (history_check_test.go).
// DISTSYNC_SOAK=10m (`make soak`) runs the nemesis in rounds for that long
// instead of once.
//
// Each critical section increments two (on etcd three) registers with the
// same lease: a fenced one, which refuses any access with a token lower
// than the highest it accepted, an unfenced one, which accepts everything
// (the client "uses the lock but ignores the token"), and on etcd a counter
// key written by a Txn conditional on the lease's IsOwner. Same lock, same
// faults, same pauses: only the fencing differs, so the unfenced register
// is the control that shows the checks can fail.

// soakDuration is how long the history tests run: DISTSYNC_SOAK (such as
// "10m", set by `make soak`), or 0 for the short run of `make test`.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("DISTSYNC_SOAK")
	if s == "" {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("DISTSYNC_SOAK=%q: want a positive duration such as 10m", s)
	}
	// `make soak` runs without a test timeout, since it cannot add the
	// margin to DURATION: a soak stuck well past its end dies here, with
	// every goroutine's stack.
	name := t.Name()
	watchdog := time.AfterFunc(d+15*time.Minute, func() {
		panic(fmt.Sprintf("%s: still running 15m after its soak of %v", name, d))
	})
	t.Cleanup(func() { watchdog.Stop() })
	return d
}

// outcome is what a register did with a write.
type outcome int8

const (
	rejected outcome = iota // refused: no effect
	accepted                // applied
	unknown                 // the request failed; resolved after the run
)

// histOp is one critical section's read-modify-write of one register: a
// porcupine operation from the read's call to the write's return.
type histOp struct {
	client      int
	token       uint64
	call, ret   int64 // nanoseconds since the workload started
	read, wrote int
	outcome     outcome
	marker      string // etcd Txn register: the key that proves the write applied
}

// access is one access a register accepted, in the order it applied them:
// the direct check's input.
type access struct {
	write       bool
	token       uint64
	read, wrote int // write only
}

// register is a counter incremented under a lease: read, then write
// read+1 (record takes the finished operation). read reports false when
// the register refused the read or could not be read: nothing is written
// then. Methods are called from many workers at once.
type register interface {
	label() string
	read(ctx context.Context, c *histClient, l distsync.Lease) (int, bool)
	write(ctx context.Context, c *histClient, l distsync.Lease, op *histOp)
	record(op *histOp)
	// result resolves unknown writes and returns the operations, the
	// accepted accesses in order, and the final value.
	result(ctx context.Context) ([]*histOp, []access, int, error)
}

// opLog is the operations a register recorded.
type opLog struct {
	opsMu sync.Mutex
	ops   []*histOp
}

func (o *opLog) record(op *histOp) {
	o.opsMu.Lock()
	o.ops = append(o.ops, op)
	o.opsMu.Unlock()
}

func (o *opLog) recorded() []*histOp {
	o.opsMu.Lock()
	defer o.opsMu.Unlock()
	return append([]*histOp(nil), o.ops...)
}

// memRegister is the protected resource in memory. It reuses fencedStore's
// state (highest token, value, rejections); unlike fencedStore.increment it
// also fences the read, since a read-modify-write is safe only if a holder
// whose lease passed on can neither write after the next holder read nor
// read after the next holder wrote. With fenced false it is the control:
// every access is accepted whatever its token.
type memRegister struct {
	fencedStore
	fenced   bool
	accesses []access // guarded by fencedStore.mu
	opLog
}

func (m *memRegister) label() string {
	if m.fenced {
		return "fenced"
	}
	return "unfenced"
}

// admit applies the fencing rule to token; m.mu is held.
func (m *memRegister) admit(token uint64) bool {
	if m.fenced && token < m.highest {
		m.rejected++
		return false
	}
	m.highest = max(m.highest, token)
	return true
}

func (m *memRegister) read(_ context.Context, _ *histClient, l distsync.Lease) (int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.admit(l.Token()) {
		return 0, false
	}
	m.accesses = append(m.accesses, access{token: l.Token()})
	return m.value, true
}

func (m *memRegister) write(_ context.Context, _ *histClient, l distsync.Lease, op *histOp) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.admit(l.Token()) {
		op.outcome = rejected
		return
	}
	m.value = op.wrote
	m.accesses = append(m.accesses, access{write: true, token: l.Token(), read: op.read, wrote: op.wrote})
	op.outcome = accepted
}

func (m *memRegister) result(context.Context) ([]*histOp, []access, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.recorded(), append([]access(nil), m.accesses...), m.value, nil
}

// held is a holder in its critical section, as the nemesis sees it.
type held struct {
	c *histClient
	l distsync.Lease
}

// grab is the nemesis's hold on the next holder to reach its critical
// section: the holder hands itself over on got, after its reads and before
// its writes, and waits for release. Then it pauses for pause (its renewals
// frozen, as in a process pause) and writes.
type grab struct {
	got      chan held
	release  chan struct{}
	pause    time.Duration
	targeted bool          // the fault ends this lease: check it is told
	within   time.Duration // how long the loss signal may take after the writes
}

// histClient is one workload client: a primitive on a session and a
// connection of its own, and what the nemesis can do to it.
type histClient struct {
	acquire func(context.Context) (distsync.Lease, error)
	close   func() error
	// freeze stops the client's lease renewals as a paused process would;
	// the function it returns undoes it.
	freeze func(l distsync.Lease) (thaw func())
	// What the nemesis and the registers need of each backend's client.
	kv      *clientv3.Client      // etcd: the client (the Txn register writes through it)
	member  int                   // etcd: the member kv talks to
	session func() *etcdq.Session // etcd: the Session under the primitive
	proxy   *distsynctest.Proxy   // ZooKeeper: the client's own way to the server
	zk      *zksync.Session       // ZooKeeper
}

// histOpen opens client i of a workload.
type histOpen func(ctx context.Context, i int) (*histClient, error)

// histWorkload is one primitive under test: clients looping over the
// critical section, the registers they increment, and what happened.
type histWorkload struct {
	prim  string // "mutex", "semaphore", "rwmutex", "election"
	regs  []register
	start time.Time
	grabs chan *grab

	acquired, failures, lossObserved atomic.Int64
	targeted, signalled              atomic.Int64
	maxToken                         atomic.Uint64
	lastErr                          atomic.Value
	unsignalled                      atomic.Value // string: the last targeted lease not told
}

func newHistWorkload(prim string, regs ...register) *histWorkload {
	return &histWorkload{prim: prim, regs: regs, start: time.Now(), grabs: make(chan *grab)}
}

func (w *histWorkload) now() int64 { return int64(time.Since(w.start)) }

// run starts n clients looping until ctx ends.
func (w *histWorkload) run(ctx context.Context, n int, open histOpen) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { w.client(ctx, i, open) })
	}
	return &wg
}

func (w *histWorkload) client(ctx context.Context, i int, open histOpen) {
	var c *histClient
	defer func() {
		if c != nil {
			_ = c.close()
		}
	}()
	for ctx.Err() == nil {
		if c == nil {
			var err error
			if c, err = open(ctx, i); err != nil {
				c = nil
				w.fail(err)
				sleepCtx(ctx, 50*time.Millisecond)
				continue
			}
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		l, err := c.acquire(actx)
		cancel()
		if err != nil {
			w.fail(err)
			if errors.Is(err, distsync.ErrClosed) || errors.Is(err, distsync.ErrLost) {
				_ = c.close()
				c = nil
			}
			// A server that is down fails every call at once.
			sleepCtx(ctx, 20*time.Millisecond)
			continue
		}
		w.acquired.Add(1)
		for tok := l.Token(); ; {
			m := w.maxToken.Load()
			if tok <= m || w.maxToken.CompareAndSwap(m, tok) {
				break
			}
		}
		w.critical(ctx, i, c, l)
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = l.Release(rctx)
		rcancel()
		// Release keeps the Err of a lease lost before it.
		if errors.Is(l.Err(), distsync.ErrLost) {
			w.lossObserved.Add(1)
		}
	}
}

// critical reads every register, lets the nemesis take the holder, then
// writes read+1 to every register that let it read. The holder never looks
// at its lease before writing: only the registers keep it safe.
func (w *histWorkload) critical(ctx context.Context, i int, c *histClient, l distsync.Lease) {
	ops := make([]*histOp, len(w.regs))
	for k, r := range w.regs {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		op := &histOp{client: i, token: l.Token(), call: w.now()}
		v, ok := r.read(rctx, c, l)
		cancel()
		if !ok {
			op.ret = w.now()
			r.record(op) // rejected: no effect
			continue
		}
		op.read, op.wrote = v, v+1
		ops[k] = op
	}
	var g *grab
	select {
	case g = <-w.grabs:
		g.got <- held{c: c, l: l}
		select {
		case <-g.release:
		case <-ctx.Done(): // the nemesis failed the test
		}
		if g.pause > 0 {
			thaw := c.freeze(l)
			time.Sleep(g.pause) // the "GC pause": nothing of this client runs
			thaw()
		}
	default:
	}
	for k, r := range w.regs {
		if op := ops[k]; op != nil {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			r.write(wctx, c, l, op)
			cancel()
			op.ret = w.now()
			r.record(op)
		}
	}
	if g != nil && g.targeted {
		w.targeted.Add(1)
		select {
		case <-l.Done():
		case <-time.After(g.within):
		}
		if errors.Is(l.Err(), distsync.ErrLost) {
			w.signalled.Add(1)
		} else {
			w.unsignalled.Store(fmt.Sprintf("token %d: Err %v %v after the fault", l.Token(), l.Err(), g.within))
		}
	}
}

func (w *histWorkload) fail(err error) {
	if !errors.Is(err, context.Canceled) {
		w.failures.Add(1)
		w.lastErr.Store(err.Error())
	}
}

// take waits for the next holder to reach its critical section and
// returns it stopped there: the caller injects its fault and then closes
// g.release. It fails t after within.
func (w *histWorkload) take(t *testing.T, g *grab, within time.Duration) held {
	t.Helper()
	g.got, g.release = make(chan held, 1), make(chan struct{})
	select {
	case w.grabs <- g:
	case <-time.After(within):
		t.Fatalf("%s: no holder reached its critical section within %v (last error: %v)", w.prim, within, w.lastErr.Load())
	}
	return <-g.got
}

// pauseHolder makes the next holder pause for d with its renewals frozen,
// then write; it does not wait for the pause.
func (w *histWorkload) pauseHolder(t *testing.T, d, within time.Duration) {
	t.Helper()
	g := &grab{pause: d, targeted: true, within: within}
	w.take(t, g, 30*time.Second)
	close(g.release)
}

// progress waits until every workload has made n more acquisitions.
func progress(t *testing.T, ws []*histWorkload, n int64, what string) {
	t.Helper()
	want := make([]int64, len(ws))
	for i, w := range ws {
		want[i] = w.acquired.Load() + n
	}
	deadline := time.Now().Add(90 * time.Second)
	for i, w := range ws {
		for w.acquired.Load() < want[i] {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s made no progress: %d acquisitions, want %d (last error: %v)",
					what, w.prim, w.acquired.Load(), want[i], w.lastErr.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// stopper cancels a run and waits for its clients, once.
type stopper struct {
	once   sync.Once
	cancel context.CancelFunc
	wgs    []*sync.WaitGroup
}

func (s *stopper) stop() {
	s.once.Do(func() {
		s.cancel()
		for _, wg := range s.wgs {
			wg.Wait()
		}
	})
}

// calm lets a soak's clients run without faults for a while between the
// nemesis's rounds, so that its histories hold long fault-free stretches
// too; the short run goes straight to its end.
func calm(soak time.Duration, deadline time.Time) {
	if soak > 0 {
		time.Sleep(min(5*time.Second, max(time.Until(deadline), 0)))
	}
}
