package distsync_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// memElection is an in-memory Election for testing Run without a backend:
// candidates lead in campaign order, terms count up, and every change
// wakes the waiters and observers.
type memElection struct {
	mu      sync.Mutex
	term    uint64
	queue   []*memLeadership // queue[0] leads
	changed chan struct{}    // closed and replaced on every change

	failures  []error // returned by the next Campaign calls, in order
	campaigns atomic.Int64

	// onRelease, if set, runs at the start of every Release with its
	// context, as a backend request would (one that may hang).
	onRelease func(ctx context.Context)
}

func newMemElection() *memElection { return &memElection{changed: make(chan struct{})} }

// notify wakes everyone waiting for a change; e.mu is held.
func (e *memElection) notify() {
	close(e.changed)
	e.changed = make(chan struct{})
}

func (e *memElection) Campaign(ctx context.Context, value []byte) (distsync.Leadership, error) {
	e.campaigns.Add(1)
	e.mu.Lock()
	if len(e.failures) > 0 {
		err := e.failures[0]
		e.failures = e.failures[1:]
		e.mu.Unlock()
		return nil, err
	}
	e.term++
	l := &memLeadership{e: e, term: e.term, value: bytes.Clone(value), done: make(chan struct{})}
	e.queue = append(e.queue, l)
	e.notify()
	for e.queue[0] != l {
		ch := e.changed
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			l.end(distsync.ErrReleased)
			return nil, distsync.Errorf(distsync.ErrNotAcquired, ctx.Err(), "")
		}
		e.mu.Lock()
	}
	e.mu.Unlock()
	return l, nil
}

func (e *memElection) state() distsync.Leader {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.queue) == 0 {
		return distsync.Leader{None: true}
	}
	return distsync.Leader{Term: e.queue[0].term, Value: e.queue[0].value}
}

func (e *memElection) Leader(context.Context) (distsync.Leader, error) {
	if l := e.state(); !l.None {
		return l, nil
	}
	return distsync.Leader{}, distsync.ErrNoLeader
}

func (e *memElection) Observe(ctx context.Context) <-chan distsync.Leader {
	ch := make(chan distsync.Leader)
	go func() {
		defer close(ch)
		var last distsync.Leader
		first := true
		for {
			e.mu.Lock()
			wait := e.changed
			e.mu.Unlock()
			cur := e.state()
			if first || cur.None != last.None || cur.Term != last.Term || !bytes.Equal(cur.Value, last.Value) {
				select {
				case ch <- cur:
				case <-ctx.Done():
					return
				}
				last, first = cur, false
			}
			select {
			case <-wait:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// leader returns the current leadership, or nil.
func (e *memElection) leader() *memLeadership {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.queue) == 0 {
		return nil
	}
	return e.queue[0]
}

type memLeadership struct {
	e     *memElection
	term  uint64
	value []byte
	done  chan struct{}
	err   error // guarded by e.mu
}

// end removes the candidacy and records why, once.
func (l *memLeadership) end(err error) {
	l.e.mu.Lock()
	defer l.e.mu.Unlock()
	if l.err != nil {
		return
	}
	l.err = err
	close(l.done)
	l.e.queue = slices.DeleteFunc(l.e.queue, func(x *memLeadership) bool { return x == l })
	l.e.notify()
}

// lose ends the leadership as a backend would when its session expires.
func (l *memLeadership) lose() { l.end(distsync.Errorf(distsync.ErrLost, nil, "session expired")) }

func (l *memLeadership) Token() uint64         { return l.term }
func (l *memLeadership) Done() <-chan struct{} { return l.done }
func (l *memLeadership) Err() error {
	l.e.mu.Lock()
	defer l.e.mu.Unlock()
	return l.err
}
func (l *memLeadership) Release(ctx context.Context) error {
	if f := l.e.onRelease; f != nil {
		f(ctx)
	}
	l.end(distsync.ErrReleased)
	return nil
}
func (l *memLeadership) Proclaim(_ context.Context, v []byte) error {
	l.e.mu.Lock()
	defer l.e.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	l.value = bytes.Clone(v)
	l.e.notify()
	return nil
}

// events records what a Run's callbacks saw, in order.
type events struct {
	mu  sync.Mutex
	log []string
	ch  chan string // every entry, for waiting
}

func newEvents() *events { return &events{ch: make(chan string, 100)} }

func (ev *events) add(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	ev.mu.Lock()
	ev.log = append(ev.log, s)
	ev.mu.Unlock()
	ev.ch <- s
}

// wait waits for the entry want, failing t after 5s.
func (ev *events) wait(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-ev.ch:
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("no %q within 5s; log %q", want, ev.get())
		}
	}
}

func (ev *events) get() []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return slices.Clone(ev.log)
}

// worker returns callbacks that log as name and do their work until their
// context ends, then check (for a moment) that leadership is still held
// while they finish: Run must release only after the work returned.
func worker(ev *events, e *memElection, name string) distsync.Callbacks {
	return distsync.Callbacks{
		OnStartedLeading: func(ctx context.Context, _ distsync.Leadership) {
			l := e.leader()
			ev.add("%s started", name)
			<-ctx.Done()
			ev.add("%s cancelled: %v", name, context.Cause(ctx))
			time.Sleep(20 * time.Millisecond) // the work winds down
			if l != nil && l.Err() == nil && e.leader() != l {
				ev.add("%s: someone else leads before the work returned", name)
			}
			ev.add("%s returned", name)
		},
		OnStoppedLeading: func() { ev.add("%s stopped", name) },
	}
}

func runAsync(ctx context.Context, e distsync.Election, value string, cb distsync.Callbacks, opts ...distsync.RunOption) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- distsync.Run(ctx, e, []byte(value), cb, opts...) }()
	return errc
}

func TestRunReleasesAfterWorkReturned(t *testing.T) {
	e := newMemElection()
	ev := newEvents()
	ctx, cancel := context.WithCancel(context.Background())
	errc := runAsync(ctx, e, "a", worker(ev, e, "a"))
	ev.wait(t, "a started")
	l := e.leader()
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	want := []string{"a started", "a cancelled: context canceled", "a returned", "a stopped"}
	if got := ev.get(); !slices.Equal(got, want) {
		t.Fatalf("callbacks %q, want %q", got, want)
	}
	if !errors.Is(l.Err(), distsync.ErrReleased) {
		t.Fatalf("leadership after Run: %v, want released", l.Err())
	}
	if _, err := e.Leader(context.Background()); !errors.Is(err, distsync.ErrNoLeader) {
		t.Fatalf("Leader after Run: %v, want ErrNoLeader", err)
	}
}

func TestRunHandsOverOnlyAfterWork(t *testing.T) {
	e := newMemElection()
	ev := newEvents()
	ctxA, cancelA := context.WithCancel(context.Background())
	errA := runAsync(ctxA, e, "a", worker(ev, e, "a"))
	ev.wait(t, "a started")
	ctxB, cancelB := context.WithCancel(context.Background())
	defer cancelB()
	errB := runAsync(ctxB, e, "b", worker(ev, e, "b"))
	for e.campaigns.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	cancelA()
	ev.wait(t, "b started")
	if err := <-errA; err != nil {
		t.Fatal(err)
	}
	cancelB()
	if err := <-errB; err != nil {
		t.Fatal(err)
	}
	// a's OnStoppedLeading comes after its resignation, so it may come
	// after b started; b must start only after a's work returned.
	got := ev.get()
	var ofA, ofB []string
	for _, s := range got {
		if s[0] == 'a' {
			ofA = append(ofA, s)
		} else {
			ofB = append(ofB, s)
		}
	}
	wantA := []string{"a started", "a cancelled: context canceled", "a returned", "a stopped"}
	wantB := []string{"b started", "b cancelled: context canceled", "b returned", "b stopped"}
	if !slices.Equal(ofA, wantA) || !slices.Equal(ofB, wantB) {
		t.Fatalf("callbacks %q, want a's %q and b's %q", got, wantA, wantB)
	}
	if slices.Index(got, "a returned") > slices.Index(got, "b started") {
		t.Fatalf("b started before a's work returned: %q", got)
	}
}

func TestRunRecampaignsAfterLoss(t *testing.T) {
	e := newMemElection()
	ev := newEvents()
	ctx, cancel := context.WithCancel(context.Background())
	errc := runAsync(ctx, e, "a", worker(ev, e, "a"))
	ev.wait(t, "a started")
	first := e.leader()
	first.lose()
	ev.wait(t, "a started")
	second := e.leader()
	if second == nil || second.term <= first.term {
		t.Fatalf("after the loss: leader %+v, want a new term above %d", second, first.term)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	got := ev.get()
	if len(got) < 4 || got[0] != "a started" || !slices.Contains(got[:4], "a cancelled: distsync: lease lost: session expired") ||
		slices.Index(got, "a stopped") > slices.Index(got, "a returned") {
		t.Fatalf("callbacks %q: want the loss as the work context's cause, and stopped before the work returned", got)
	}
}

func TestRunStopOnLoss(t *testing.T) {
	e := newMemElection()
	ev := newEvents()
	errc := runAsync(context.Background(), e, "a", worker(ev, e, "a"), distsync.StopOnLoss())
	ev.wait(t, "a started")
	e.leader().lose()
	if err := <-errc; !errors.Is(err, distsync.ErrLost) {
		t.Fatalf("Run with StopOnLoss after a loss: %v, want ErrLost", err)
	}
	if n := e.campaigns.Load(); n != 1 {
		t.Fatalf("%d campaigns, want 1", n)
	}
}

func TestRunWorkReturnsByItself(t *testing.T) {
	e := newMemElection()
	var stopped atomic.Bool
	err := distsync.Run(context.Background(), e, []byte("a"), distsync.Callbacks{
		OnStartedLeading: func(context.Context, distsync.Leadership) {},
		OnStoppedLeading: func() { stopped.Store(true) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !stopped.Load() {
		t.Fatal("OnStoppedLeading not called")
	}
	if l := e.leader(); l != nil {
		t.Fatalf("leadership %d still held after Run returned", l.term)
	}
}

func TestRunRetriesCampaignFailures(t *testing.T) {
	e := newMemElection()
	e.failures = []error{
		distsync.Errorf(distsync.ErrUnavailable, nil, "etcd down"),
		distsync.Errorf(distsync.ErrLost, nil, "session expired while waiting"),
	}
	err := distsync.Run(context.Background(), e, []byte("a"), distsync.Callbacks{OnStartedLeading: func(context.Context, distsync.Leadership) {}})
	if err != nil {
		t.Fatal(err)
	}
	if n := e.campaigns.Load(); n != 3 {
		t.Fatalf("%d campaigns, want 3 (two retried failures)", n)
	}

	// Permanent failures end Run at once, with one campaign each.
	for _, sentinel := range []error{distsync.ErrClosed, distsync.ErrDenied, distsync.ErrInvalidConfig} {
		before := e.campaigns.Load()
		e.failures = []error{distsync.Errorf(sentinel, nil, "permanent"), distsync.Errorf(sentinel, nil, "permanent")}
		err = distsync.Run(context.Background(), e, []byte("a"), distsync.Callbacks{OnStartedLeading: func(context.Context, distsync.Leadership) {}})
		if !errors.Is(err, sentinel) {
			t.Fatalf("Run with a campaign failing with %v: %v", sentinel, err)
		}
		if n := e.campaigns.Load() - before; n != 1 {
			t.Fatalf("%v: %d campaigns, want 1 (never retried)", sentinel, n)
		}
	}
}

func TestRunCancelledWhileCampaigning(t *testing.T) {
	e := newMemElection()
	holder, err := e.Campaign(context.Background(), []byte("holder"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = distsync.Run(ctx, e, []byte("a"), distsync.Callbacks{
		OnStartedLeading: func(context.Context, distsync.Leadership) { t.Error("led while another held leadership") },
	})
	if err != nil {
		t.Fatalf("Run cancelled while campaigning: %v", err)
	}
	e.mu.Lock()
	n := len(e.queue)
	e.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d candidates after a cancelled Run, want the holder only", n)
	}
	_ = holder.Release(context.Background())
}

func TestRunOnNewLeader(t *testing.T) {
	e := newMemElection()
	ev := newEvents()
	ctx, cancel := context.WithCancel(context.Background())
	cb := worker(ev, e, "a")
	cb.OnNewLeader = func(l distsync.Leader) {
		if l.None {
			ev.add("leader: none")
		} else {
			ev.add("leader: %s/%d", l.Value, l.Term)
		}
	}
	errc := runAsync(ctx, e, "a", cb)
	ev.wait(t, "leader: a/1")
	e.leader().Proclaim(ctx, []byte("a2"))
	ev.wait(t, "leader: a2/1")
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// No OnNewLeader call after Run returned.
	n := len(ev.get())
	time.Sleep(20 * time.Millisecond)
	if got := ev.get(); len(got) != n {
		t.Fatalf("callbacks after Run returned: %q", got[n:])
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	if err := distsync.Run(context.Background(), nil, nil, distsync.Callbacks{OnStartedLeading: func(context.Context, distsync.Leadership) {}}); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("nil election: %v, want ErrInvalidConfig", err)
	}
	if err := distsync.Run(context.Background(), newMemElection(), nil, distsync.Callbacks{}); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("nil OnStartedLeading: %v, want ErrInvalidConfig", err)
	}
}

// OnStoppedLeading comes as soon as a loss is known: before the work
// returns and before the Release, which may hang on an unreachable
// backend. After a shutdown it comes after the Release.
func TestElectorStopsAtOnceOnLoss(t *testing.T) {
	e := newMemElection()
	ev := newEvents()
	e.onRelease = func(ctx context.Context) {
		ev.add("release begun")
		<-ctx.Done() // the backend does not answer
		ev.add("release returned")
	}
	stopped := make(chan struct{})
	el := &distsync.Elector{Election: e, Value: []byte("a"), ReleaseTimeout: 50 * time.Millisecond,
		Callbacks: distsync.Callbacks{
			OnStartedLeading: func(ctx context.Context, _ distsync.Leadership) {
				ev.add("started")
				<-ctx.Done()
				select { // the work winds down only once stopped was called
				case <-stopped:
					ev.add("returned after stopped")
				case <-time.After(5 * time.Second):
					ev.add("returned, stopped never called")
				}
			},
			OnStoppedLeading: func() {
				ev.add("stopped")
				close(stopped)
			},
		}, StopOnLoss: true}
	errc := make(chan error, 1)
	go func() { errc <- el.Run(context.Background()) }()
	ev.wait(t, "started")
	e.leader().lose()
	if err := <-errc; !errors.Is(err, distsync.ErrLost) {
		t.Fatalf("Run: %v, want ErrLost", err)
	}
	want := []string{"started", "stopped", "returned after stopped", "release begun", "release returned"}
	if got := ev.get(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}

	// After a shutdown: the work returns, the Release, then stopped.
	ev = newEvents()
	ctx, cancel := context.WithCancel(context.Background())
	el2 := &distsync.Elector{Election: e, Value: []byte("b"), ReleaseTimeout: 50 * time.Millisecond,
		Callbacks: distsync.Callbacks{
			OnStartedLeading: func(ctx context.Context, _ distsync.Leadership) { ev.add("started"); <-ctx.Done(); ev.add("returned") },
			OnStoppedLeading: func() { ev.add("stopped") },
		}}
	go func() { errc <- el2.Run(ctx) }()
	ev.wait(t, "started")
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	want = []string{"started", "returned", "release begun", "release returned", "stopped"}
	if got := ev.get(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

// IsLeader and Leader answer without a round trip, from what Run holds
// and observed; IsLeader turns false the moment a loss is known.
func TestElectorIsLeaderAndLeader(t *testing.T) {
	e := newMemElection()
	ev := newEvents()
	el := &distsync.Elector{Election: e, Value: []byte("a"), Identity: "pod-a"}
	if el.IsLeader() {
		t.Fatal("IsLeader before Run")
	}
	if _, ok := el.Leader(); ok {
		t.Fatal("Leader known before Run")
	}
	release := make(chan struct{})
	el.Callbacks = distsync.Callbacks{
		OnStartedLeading: func(ctx context.Context, _ distsync.Leadership) {
			ev.add("started")
			<-ctx.Done()
			<-release // the work outlives the loss
		},
		OnNewLeader: func(l distsync.Leader) { ev.add("leader %s/%d", l.Value, l.Term) },
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- el.Run(ctx) }()
	ev.wait(t, "started")
	deadline := time.Now().Add(5 * time.Second)
	for l, ok := el.Leader(); !ok || l.Term != 1; l, ok = el.Leader() {
		if time.Now().After(deadline) {
			t.Fatalf("Leader() = %+v, %v; want term 1 within 5s", l, ok)
		}
		time.Sleep(time.Millisecond)
	}
	if !el.IsLeader() {
		t.Fatal("IsLeader false while leading")
	}
	if l, ok := el.Leader(); !ok || string(l.Value) != "a" || l.Term != 1 {
		t.Fatalf("Leader() = %+v, %v; want a/1", l, ok)
	}
	e.leader().lose()
	if el.IsLeader() {
		t.Fatal("IsLeader true after the loss, while the work still runs")
	}
	close(release)
	ev.wait(t, "started") // campaigns again and leads term 2
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if el.IsLeader() {
		t.Fatal("IsLeader after Run returned")
	}
}

// Check and Healthz fail while the work outlives its leadership by more
// than the tolerance, and pass again once it returned.
func TestElectorHealthCheck(t *testing.T) {
	e := newMemElection()
	ev := newEvents()
	release := make(chan struct{})
	el := &distsync.Elector{Election: e, Value: []byte("a"), Identity: "pod-a", StopOnLoss: true,
		Callbacks: distsync.Callbacks{OnStartedLeading: func(ctx context.Context, _ distsync.Leadership) {
			ev.add("started")
			<-release // ignores its context: a zombie leader
		}}}
	errc := make(chan error, 1)
	go func() { errc <- el.Run(context.Background()) }()
	ev.wait(t, "started")
	h := el.Healthz(20 * time.Millisecond)
	if code := serve(h); code != http.StatusOK {
		t.Fatalf("healthz while leading: %d, want 200", code)
	}
	e.leader().lose()
	deadline := time.Now().Add(5 * time.Second)
	for el.Check(20*time.Millisecond) == nil {
		if time.Now().After(deadline) {
			t.Fatal("Check still passes 5s after the loss, with the work running")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := el.Check(20 * time.Millisecond); !strings.Contains(err.Error(), "pod-a") {
		t.Fatalf("Check error %q does not name the identity", err)
	}
	if code := serve(h); code != http.StatusInternalServerError {
		t.Fatalf("healthz with a zombie leader: %d, want 500", code)
	}
	if err := el.Check(time.Hour); err != nil {
		t.Fatalf("Check within its tolerance: %v", err)
	}
	close(release)
	if err := <-errc; !errors.Is(err, distsync.ErrLost) {
		t.Fatalf("Run: %v, want ErrLost", err)
	}
	if code := serve(h); code != http.StatusOK {
		t.Fatalf("healthz after the work returned: %d, want 200", code)
	}
}

func serve(h http.Handler) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	return rec.Code
}

// An Elector runs one Run at a time.
func TestElectorOneRunAtATime(t *testing.T) {
	e := newMemElection()
	ev := newEvents()
	el := &distsync.Elector{Election: e, Callbacks: distsync.Callbacks{OnStartedLeading: func(ctx context.Context, _ distsync.Leadership) {
		ev.add("started")
		<-ctx.Done()
	}}}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- el.Run(ctx) }()
	ev.wait(t, "started")
	if err := el.Run(context.Background()); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Fatalf("second Run: %v, want ErrInvalidConfig", err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
