package distsynctest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// electionBackend is what the conformance suite needs from a backend to
// hold an Election to the properties TestSession lists. Every function fails t
// on error and registers its own cleanup.
type electionBackend struct {
	// newElection returns the Election called name on a new client and
	// session of its own, as a separate process would have.
	newElection func(t *testing.T, name string) distsync.Election
	// newCuttableElection is newElection on a client whose connection to
	// the backend the test can cut (every connection dropped, new ones
	// refused) and heal.
	newCuttableElection func(t *testing.T, name string) (e distsync.Election, cut, heal func())
	// endSession ends the session behind e from outside, as an operator or
	// an expiry would (etcd: revoke its lease).
	endSession func(t *testing.T, e distsync.Election)
	// compact discards the backend's history of changes up to now; nil for
	// a backend that keeps none.
	compact func(t *testing.T)
	// keys lists the candidate state of name.
	keys func(t *testing.T, name string) []string
	// observeCoalesces declares that the backend's Observe may skip
	// short-lived states (ZooKeeper: a watch fires once and the server
	// keeps no history, so a leader that held for a few milliseconds, a
	// value proclaimed and replaced quickly, or the changes made while an
	// observer was cut off may be missed). The observation checks then
	// verify the weaker property instead of "every state, in order": what
	// an observer delivers is a subsequence of the states that held, so it
	// is in term order, holds only states that really held, never an
	// older state after a newer one, and ends at the final state. The
	// at-most-one-leader checks stay as they are. False for etcd and Redis.
	observeCoalesces bool
}

// testElectionConformance runs the Election conformance suite on backend b.
func testElectionConformance(t *testing.T, b electionBackend) {
	t.Run("AtMostOneLeader", func(t *testing.T) { testAtMostOneLeader(t, b) })
	t.Run("ResignHandsOver", func(t *testing.T) { testResignHandsOver(t, b) })
	t.Run("KilledLeaderSuccessor", func(t *testing.T) { testKilledLeaderSuccessor(t, b) })
	t.Run("CancelLeavesNoCandidate", func(t *testing.T) { testCampaignCancel(t, b) })
	t.Run("NoLeadershipAfterSessionDied", func(t *testing.T) { testNoLeadershipAfterSessionDied(t, b) })
	t.Run("NoLeader", func(t *testing.T) { testNoLeader(t, b) })
	t.Run("ObserveResumesAfterReconnect", func(t *testing.T) { testObserveResumes(t, b, false) })
	if b.compact != nil { // a backend that keeps no history has nothing to compact
		t.Run("ObserveResumesAfterCompaction", func(t *testing.T) { testObserveResumes(t, b, true) })
	}
	t.Run("NameIsolation", func(t *testing.T) { testElectionNameIsolation(t, b) })
	t.Run("Run", func(t *testing.T) { testElectionRun(t, b) })
}

// leadAndProclaim runs candidates that each campaign rounds times, hold
// leadership for hold, proclaim a second value, hold again and resign,
// recording everything in g. It returns the first error.
func leadAndProclaim(elections []distsync.Election, rounds int, hold time.Duration, g *leaderLog) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make([]error, len(elections))
	var wg sync.WaitGroup
	for i, e := range elections {
		wg.Go(func() {
			for r := range rounds {
				v := fmt.Sprintf("c%d-r%d", i, r)
				l, err := e.Campaign(ctx, []byte(v))
				if err != nil {
					errs[i] = err
					return
				}
				g.begin(l.Token(), v)
				time.Sleep(hold)
				g.proclaim(l.Token(), v+"+")
				if err := l.Proclaim(ctx, []byte(v+"+")); err != nil {
					errs[i] = err
				}
				time.Sleep(hold)
				g.end(l.Token())
				if err := l.Release(ctx); err != nil {
					errs[i] = err
				}
				if errs[i] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// testAtMostOneLeader runs candidates through many handovers while two
// observers watch, and checks the leaders against each other (never two
// at once, terms increasing) and against the observers (by term; every
// leader and proclaimed value seen, in order). The same checks run first on
// an "election" in which everyone leads at once, and must fire there.
func testAtMostOneLeader(t *testing.T, b electionBackend) {
	const candidates, rounds, hold = 5, 4, 3 * time.Millisecond
	run := func(t *testing.T, newElection func() distsync.Election) (*leaderLog, []string) {
		g := newLeaderLog()
		obs := []*leaderObserver{startObserver(t, newElection(), g), startObserver(t, newElection(), g)}
		var es []distsync.Election
		for range candidates {
			es = append(es, newElection())
		}
		if err := leadAndProclaim(es, rounds, hold, g); err != nil {
			t.Fatal(err)
		}
		for _, o := range obs {
			o.waitLast(t, "none")
			o.close()
		}
		bad := slices.Clone(g.violations)
		for i, o := range obs {
			for _, v := range g.checkObservations(o.get(), b.observeCoalesces) {
				bad = append(bad, fmt.Sprintf("leaderObserver %d: %s", i, v))
			}
		}
		return g, bad
	}

	broken := newEveryoneLeads()
	control, controlBad := run(t, func() distsync.Election { return broken })
	crossChecks := 0
	for _, v := range controlBad {
		if strings.Contains(v, "an observer saw term") {
			crossChecks++
		}
	}
	if control.overlaps == 0 || crossChecks == 0 {
		t.Fatalf("control: %d overlaps and %d leaderObserver cross-check failures in an election where everyone leads; the checks cannot catch a violation", control.overlaps, crossChecks)
	}
	t.Logf("control (everyone leads): %d violations found, e.g. %q", len(controlBad), controlBad[0])

	g, bad := run(t, func() distsync.Election { return b.newElection(t, t.Name()) })
	if len(bad) > 0 {
		t.Fatalf("%d violations (control had %d):\n%s", len(bad), len(controlBad), strings.Join(bad, "\n"))
	}
	if len(g.terms) != candidates*rounds {
		t.Fatalf("%d leaderships, want %d", len(g.terms), candidates*rounds)
	}
	if k := b.keys(t, t.Name()); len(k) != 0 {
		t.Fatalf("candidate state left after everyone resigned: %q", k)
	}
}

// waitCandidates waits until name has n candidates (leader included).
func waitCandidates(t *testing.T, b electionBackend, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := len(b.keys(t, name))
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d candidates of %q: have %d", n, name, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// campaignAsync campaigns in a goroutine; the channel yields the result.
type campaignResult struct {
	l   distsync.Leadership
	err error
	at  time.Time
}

func campaignAsync(ctx context.Context, e distsync.Election, value string) <-chan campaignResult {
	ch := make(chan campaignResult, 1)
	go func() {
		l, err := e.Campaign(ctx, []byte(value))
		ch <- campaignResult{l, err, time.Now()}
	}()
	return ch
}

func testResignHandsOver(t *testing.T, b electionBackend) {
	ctx := context.Background()
	name := t.Name()
	o := startObserver(t, b.newElection(t, name), nil)
	a, bb := b.newElection(t, name), b.newElection(t, name)
	la, err := a.Campaign(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	next := campaignAsync(ctx, bb, "b")
	waitCandidates(t, b, name, 2)
	start := time.Now()
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	var r campaignResult
	select {
	case r = <-next:
	case <-time.After(5 * time.Second):
		t.Fatal("the next candidate did not lead within 5s of the resignation")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("handover after a resignation took %v", r.at.Sub(start))
	if r.l.Token() <= la.Token() {
		t.Fatalf("successor's term %d not above %d", r.l.Token(), la.Token())
	}
	if got, err := a.Leader(ctx); err != nil || string(got.Value) != "b" || got.Term != r.l.Token() {
		t.Fatalf("Leader = %s, %v; want %d:b", showLeader(got), err, r.l.Token())
	}
	_ = r.l.Release(ctx)
	seq := o.waitLast(t, "none")
	b.checkObserved(t, seq, "none", fmt.Sprintf("%d:a", la.Token()), fmt.Sprintf("%d:b", r.l.Token()), "none")
}

func testKilledLeaderSuccessor(t *testing.T, b electionBackend) {
	ctx := context.Background()
	name := t.Name()
	o := startObserver(t, b.newElection(t, name), nil)
	a, bb := b.newElection(t, name), b.newElection(t, name)
	la, err := a.Campaign(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	next := campaignAsync(ctx, bb, "b")
	waitCandidates(t, b, name, 2)
	b.endSession(t, a)
	var r campaignResult
	select {
	case r = <-next:
	case <-time.After(15 * time.Second):
		t.Fatal("no successor within 15s of the leader's session end")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.l.Release(ctx)
	if r.l.Token() <= la.Token() {
		t.Fatalf("successor's term %d not above the killed leader's %d", r.l.Token(), la.Token())
	}
	select {
	case <-la.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the killed leader was not told within 10s")
	}
	if !errors.Is(la.Err(), distsync.ErrLost) {
		t.Fatalf("killed leader's Err: %v, want ErrLost", la.Err())
	}
	if err := la.Proclaim(ctx, []byte("a-late")); !errors.Is(err, distsync.ErrLost) {
		t.Fatalf("Proclaim by the killed leader: %v, want ErrLost", err)
	}
	seq := o.waitLast(t, fmt.Sprintf("%d:b", r.l.Token()))
	b.checkObserved(t, seq, "none", fmt.Sprintf("%d:a", la.Token()), fmt.Sprintf("%d:b", r.l.Token()))
}

func testCampaignCancel(t *testing.T, b electionBackend) {
	ctx := context.Background()
	name := t.Name()
	holder, err := b.newElection(t, name).Campaign(ctx, []byte("holder"))
	if err != nil {
		t.Fatal(err)
	}
	e := b.newElection(t, name)

	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = e.Campaign(tctx, []byte("late"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, distsync.ErrNotAcquired) {
		t.Fatalf("Campaign past its deadline: got %v, want ErrNotAcquired and DeadlineExceeded", err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	r := campaignAsync(cctx, e, "late")
	waitCandidates(t, b, name, 2)
	ccancel()
	if res := <-r; !errors.Is(res.err, context.Canceled) || !errors.Is(res.err, distsync.ErrNotAcquired) {
		t.Fatalf("cancelled Campaign: got %v, want ErrNotAcquired and Canceled", res.err)
	}
	// Deadlines so short that the enqueue request itself is cut off.
	for _, d := range []time.Duration{time.Microsecond, 50 * time.Microsecond, 200 * time.Microsecond, time.Millisecond, 3 * time.Millisecond} {
		sctx, scancel := context.WithTimeout(ctx, d)
		l, err := e.Campaign(sctx, []byte("late"))
		scancel()
		if err == nil {
			_ = l.Release(ctx)
			t.Fatalf("Campaign(%v) led while another leads", d)
		}
		if !errors.Is(err, distsync.ErrNotAcquired) {
			t.Fatalf("Campaign(%v): got %v, want ErrNotAcquired", d, err)
		}
	}
	waitCandidates(t, b, name, 1)
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	waitCandidates(t, b, name, 0)
	if _, err := e.Leader(ctx); !errors.Is(err, distsync.ErrNoLeader) {
		t.Fatalf("Leader after cancelled campaigns and a resignation: %v, want ErrNoLeader", err)
	}
}

// testNoLeadershipAfterSessionDied ends a waiting candidate's session and
// then lets the leader resign: the candidate must fail, not report a
// leadership it no longer has (etcd's concurrency.Election does).
func testNoLeadershipAfterSessionDied(t *testing.T, b electionBackend) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := t.Name()
	holder, err := b.newElection(t, name).Campaign(ctx, []byte("holder"))
	if err != nil {
		t.Fatal(err)
	}
	e := b.newElection(t, name)
	r := campaignAsync(ctx, e, "doomed")
	waitCandidates(t, b, name, 2)
	b.endSession(t, e)
	waitCandidates(t, b, name, 1)
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	res := <-r
	if res.err == nil {
		_ = res.l.Release(ctx)
		t.Fatal("Campaign reported leadership after its session had ended")
	}
	if !errors.Is(res.err, distsync.ErrLost) {
		t.Fatalf("Campaign whose session ended: got %v, want ErrLost", res.err)
	}
	if _, err := e.Leader(ctx); !errors.Is(err, distsync.ErrNoLeader) {
		t.Fatalf("Leader: %v, want ErrNoLeader", err)
	}
}

func testNoLeader(t *testing.T, b electionBackend) {
	ctx := context.Background()
	name := t.Name()
	e := b.newElection(t, name)
	if _, err := e.Leader(ctx); !errors.Is(err, distsync.ErrNoLeader) {
		t.Fatalf("Leader of a new election: %v, want ErrNoLeader", err)
	}
	o := startObserver(t, e, nil)
	l, err := b.newElection(t, name).Campaign(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	o.waitLast(t, fmt.Sprintf("%d:a", l.Token()))
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	seq := o.waitLast(t, "none")
	if want := fmt.Sprintf("[none %d:a none]", l.Token()); showLeaders(seq) != want {
		t.Fatalf("observed %s, want %s", showLeaders(seq), want)
	}
	if _, err := e.Leader(ctx); !errors.Is(err, distsync.ErrNoLeader) {
		t.Fatalf("Leader after the resignation: %v, want ErrNoLeader", err)
	}
}

// testObserveResumes cuts an observer off while the leader proclaims,
// resigns and another leads, then reconnects it. Without compaction it
// must deliver every change it missed, in order; with the history compacted
// meanwhile it must deliver the current state. Either way it then goes on
// delivering changes.
func testObserveResumes(t *testing.T, b electionBackend, compact bool) {
	if b.newCuttableElection == nil {
		t.Skip("distsynctest: Backend.OpenCuttable is nil")
	}
	ctx := context.Background()
	name := t.Name()
	oe, cut, heal := b.newCuttableElection(t, name)
	o := startObserver(t, oe, nil)
	la, err := b.newElection(t, name).Campaign(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	o.waitLast(t, fmt.Sprintf("%d:a", la.Token()))

	cut()
	if err := la.Proclaim(ctx, []byte("a2")); err != nil {
		t.Fatal(err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lb, err := b.newElection(t, name).Campaign(ctx, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Release(ctx)
	if compact {
		b.compact(t)
	}
	start := time.Now()
	heal()
	seq := o.waitLast(t, fmt.Sprintf("%d:b", lb.Token()))
	t.Logf("observer caught up %v after the reconnect: %s", time.Since(start), showLeaders(seq))
	want := []string{"none", fmt.Sprintf("%d:a", la.Token()), fmt.Sprintf("%d:a2", la.Token()), "none", fmt.Sprintf("%d:b", lb.Token())}
	if compact {
		want = []string{"none", fmt.Sprintf("%d:a", la.Token()), fmt.Sprintf("%d:b", lb.Token())}
	}
	b.checkObserved(t, seq, want...)
	if err := lb.Proclaim(ctx, []byte("b2")); err != nil {
		t.Fatal(err)
	}
	o.waitLast(t, fmt.Sprintf("%d:b2", lb.Token()))
}

func testElectionNameIsolation(t *testing.T, b electionBackend) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := t.Name()
	names := []string{base, base + "/b", base + "/", base + "%2Fb", base + "%", base + "/b/c"}
	var held []distsync.Leadership
	for _, n := range names {
		l, err := b.newElection(t, n).Campaign(ctx, []byte(n))
		if err != nil {
			t.Fatalf("Campaign(%q) while the other names have leaders: %v", n, err)
		}
		held = append(held, l)
	}
	for i, n := range names {
		got, err := b.newElection(t, n).Leader(ctx)
		if err != nil || string(got.Value) != n || got.Term != held[i].Token() {
			t.Fatalf("Leader(%q) = %s, %v; want its own leader", n, showLeader(got), err)
		}
		if k := b.keys(t, n); len(k) != 1 {
			t.Fatalf("name %q sees %d candidates, want its own 1: %q", n, len(k), k)
		}
	}
	for _, l := range held {
		_ = l.Release(ctx)
	}
}

// testRun checks distsync.Run on the backend: the next leader starts only
// after the previous one's work returned, and a leader whose session is
// ended from outside is told at once (OnStoppedLeading before its work
// returned), stops its work and campaigns again.
func testElectionRun(t *testing.T, b electionBackend) {
	name := t.Name()
	var (
		mu  sync.Mutex
		log []string
		in  = map[string]bool{}
	)
	add := func(s string) {
		mu.Lock()
		log = append(log, s)
		mu.Unlock()
	}
	waitLog := func(want string, n int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			mu.Lock()
			c := 0
			for _, s := range log {
				if s == want {
					c++
				}
			}
			mu.Unlock()
			if c >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %d× %q within 15s: %q", n, want, log)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	type runner struct {
		e      distsync.Election
		cancel context.CancelFunc
		errc   chan error
	}
	start := func(id string) *runner {
		ctx, cancel := context.WithCancel(context.Background())
		r := &runner{e: b.newElection(t, name), cancel: cancel, errc: make(chan error, 1)}
		go func() {
			r.errc <- distsync.Run(ctx, r.e, []byte(id), distsync.Callbacks{
				OnStartedLeading: func(ctx context.Context, _ distsync.Leadership) {
					mu.Lock()
					for other, leading := range in {
						if leading {
							log = append(log, fmt.Sprintf("%s started while %s worked", id, other))
						}
					}
					in[id] = true
					log = append(log, id+" started")
					mu.Unlock()
					<-ctx.Done()
					add(fmt.Sprintf("%s cancelled, lost=%t", id, errors.Is(context.Cause(ctx), distsync.ErrLost)))
					time.Sleep(50 * time.Millisecond) // winding down: must finish before the next starts
					mu.Lock()
					in[id] = false
					mu.Unlock()
					add(id + " returned")
				},
				OnStoppedLeading: func() { add(id + " stopped") },
			})
		}()
		return r
	}
	a := start("a")
	waitLog("a started", 1)
	bb := start("b")
	waitCandidates(t, b, name, 2)
	a.cancel()
	if err := <-a.errc; err != nil {
		t.Fatalf("Run a after cancel: %v", err)
	}
	waitLog("b started", 1)

	b.endSession(t, bb.e)
	waitLog("b cancelled, lost=true", 1)
	waitLog("b started", 2) // campaigned again
	bb.cancel()
	if err := <-bb.errc; err != nil {
		t.Fatalf("Run b after cancel: %v", err)
	}
	waitCandidates(t, b, name, 0)
	mu.Lock()
	defer mu.Unlock()
	// Each runner's own callbacks in order; between runners, only that a
	// leader starts after the previous one's work returned (a's
	// OnStoppedLeading may come after b started: a has resigned by then).
	var ofA, ofB []string
	for _, s := range log {
		if strings.HasPrefix(s, "a ") {
			ofA = append(ofA, s)
		} else {
			ofB = append(ofB, s)
		}
	}
	// After a loss, OnStoppedLeading comes at once, with the work's
	// cancellation (in either order) and before the work returned; after
	// a shutdown, after the work returned.
	wantA := []string{"a started", "a cancelled, lost=false", "a returned", "a stopped"}
	wantB := []string{
		"b started", "b cancelled, lost=true", "b stopped", "b returned",
		"b started", "b cancelled, lost=false", "b returned", "b stopped",
	}
	if len(ofB) == len(wantB) && ofB[1] == "b stopped" && ofB[2] == "b cancelled, lost=true" {
		ofB[1], ofB[2] = ofB[2], ofB[1]
	}
	if !slices.Equal(ofA, wantA) || !slices.Equal(ofB, wantB) {
		t.Fatalf("callbacks %q, want a's %q and b's %q", log, wantA, wantB)
	}
	if slices.Index(log, "a returned") > slices.Index(log, "b started") {
		t.Fatalf("b started before a's work returned: %q", log)
	}
}
