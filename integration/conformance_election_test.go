package integration

import (
	"bytes"
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
// hold an Election to the properties of DESIGN.md. Every function fails t
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

// leaderLog records leaderships as their holders see them, and checks
// what observers see against them. A term is "live" from the return of
// Campaign until its holder starts to resign (or learns it was lost).
type leaderLog struct {
	mu         sync.Mutex
	live       map[uint64]bool
	terms      []uint64            // in the order leaderships began
	values     map[uint64][]string // per term: the campaign value, then each proclaimed one
	overlaps   int                 // a leadership began while another was live
	violations []string
}

func newLeaderLog() *leaderLog {
	return &leaderLog{live: map[uint64]bool{}, values: map[uint64][]string{}}
}

func (g *leaderLog) begin(term uint64, value string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.live) > 0 {
		g.overlaps++
		g.violations = append(g.violations, fmt.Sprintf("term %d began while %v led", term, sortedTerms(g.live)))
	}
	if n := len(g.terms); n > 0 && term <= g.terms[n-1] {
		g.violations = append(g.violations, fmt.Sprintf("term %d began after term %d", term, g.terms[n-1]))
	}
	g.live[term] = true
	g.terms = append(g.terms, term)
	g.values[term] = []string{value}
}

// proclaim is called before the Proclaim call, so that an observer never
// sees a value the log does not know yet.
func (g *leaderLog) proclaim(term uint64, value string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.values[term] = append(g.values[term], value)
}

func (g *leaderLog) end(term uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.live, term)
}

// observed cross-checks one observation by term: an observer that sees
// term T while the holder of an older term still leads has seen two
// leaders at once.
func (g *leaderLog) observed(l distsync.Leader) {
	if l.None {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for t := range g.live {
		if t < l.Term {
			g.violations = append(g.violations, fmt.Sprintf("an observer saw term %d while term %d still led", l.Term, t))
		}
	}
}

func sortedTerms(m map[uint64]bool) []uint64 {
	var ks []uint64
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// checkObservations compares an observer's sequence with the log: leaving
// out "no leader", it must be exactly every (term, value) the leaders held,
// in order, with no repeats; it must start and end with "no leader" (the
// leaderObserver ran before the first and after the last leadership).
// With coalesces (see electionBackend.observeCoalesces) it must be a
// subsequence of them instead: in order, each one held, none invented.
func (g *leaderLog) checkObservations(seq []distsync.Leader, coalesces bool) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var want, got []string
	for _, t := range g.terms {
		for _, v := range g.values[t] {
			want = append(want, fmt.Sprintf("%d:%s", t, v))
		}
	}
	var bad []string
	for i, l := range seq {
		if i > 0 && sameLeader(l, seq[i-1]) {
			bad = append(bad, fmt.Sprintf("observation %d repeats %s", i, showLeader(l)))
		}
		if !l.None {
			got = append(got, fmt.Sprintf("%d:%s", l.Term, l.Value))
		}
	}
	if len(seq) == 0 || !seq[0].None || !seq[len(seq)-1].None {
		bad = append(bad, fmt.Sprintf("observations do not start and end with no leader: %s", showLeaders(seq)))
	}
	switch {
	case coalesces && len(got) == 0:
		bad = append(bad, fmt.Sprintf("observed no leader at all of %q", want))
	case coalesces && !isSubsequence(got, want):
		bad = append(bad, fmt.Sprintf("observed leaders %q, want some of the leaders and values that held, in order %q", got, want))
	case !coalesces && !slices.Equal(got, want):
		bad = append(bad, fmt.Sprintf("observed leaders %q, want every leader and value in order %q", got, want))
	}
	return bad
}

// isSubsequence reports whether sub is want with some elements left out.
func isSubsequence(sub, want []string) bool {
	i := 0
	for _, w := range want {
		if i < len(sub) && sub[i] == w {
			i++
		}
	}
	return i == len(sub)
}

// checkObserved compares what an observer delivered with want, every state
// that held, in order (as showLeader writes them). It must be exactly want;
// for a backend whose observers coalesce, a subsequence of want with its
// first and last states and no state twice in a row.
func (b electionBackend) checkObserved(t *testing.T, seq []distsync.Leader, want ...string) {
	t.Helper()
	var got []string
	for _, l := range seq {
		got = append(got, showLeader(l))
	}
	if !b.observeCoalesces {
		if !slices.Equal(got, want) {
			t.Fatalf("observed %s, want [%s]", showLeaders(seq), strings.Join(want, " "))
		}
		return
	}
	ok := len(got) > 0 && got[0] == want[0] && got[len(got)-1] == want[len(want)-1] && isSubsequence(got, want)
	for i := 1; i < len(got); i++ {
		ok = ok && got[i] != got[i-1]
	}
	if !ok {
		t.Fatalf("observed %s, want [%s] or, as this backend's observers may coalesce, a subsequence of it from its first to its last state", showLeaders(seq), strings.Join(want, " "))
	}
	t.Logf("observed %s of [%s]", showLeaders(seq), strings.Join(want, " "))
}

func sameLeader(a, b distsync.Leader) bool {
	return a.None == b.None && a.Term == b.Term && bytes.Equal(a.Value, b.Value)
}

func showLeader(l distsync.Leader) string {
	if l.None {
		return "none"
	}
	return fmt.Sprintf("%d:%s", l.Term, l.Value)
}

func showLeaders(seq []distsync.Leader) string {
	var s []string
	for _, l := range seq {
		s = append(s, showLeader(l))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// leaderObserver collects what an Election's Observe delivers until stopped.
type leaderObserver struct {
	mu   sync.Mutex
	seq  []distsync.Leader
	more chan struct{} // closed and replaced on every observation
	stop context.CancelFunc
	done chan struct{}
}

// startObserver starts an observer of e; the log (may be nil) cross-checks every
// observation. It waits for the first observation.
func startObserver(t *testing.T, e distsync.Election, g *leaderLog) *leaderObserver {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	o := &leaderObserver{more: make(chan struct{}), stop: cancel, done: make(chan struct{})}
	ch := e.Observe(ctx)
	go func() {
		defer close(o.done)
		for l := range ch {
			if g != nil {
				g.observed(l)
			}
			o.mu.Lock()
			o.seq = append(o.seq, l)
			close(o.more)
			o.more = make(chan struct{})
			o.mu.Unlock()
		}
	}()
	t.Cleanup(o.close)
	o.waitFor(t, "a first observation", func(seq []distsync.Leader) bool { return len(seq) > 0 })
	return o
}

func (o *leaderObserver) close() {
	o.stop()
	<-o.done
}

func (o *leaderObserver) get() []distsync.Leader {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.seq)
}

// waitFor waits until cond holds for the observations so far.
func (o *leaderObserver) waitFor(t *testing.T, what string, cond func([]distsync.Leader) bool) []distsync.Leader {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		o.mu.Lock()
		seq, more := slices.Clone(o.seq), o.more
		o.mu.Unlock()
		if cond(seq) {
			return seq
		}
		select {
		case <-more:
		case <-o.done:
			t.Fatalf("leaderObserver closed while waiting for %s: %s", what, showLeaders(o.get()))
		case <-timeout:
			t.Fatalf("waiting for %s: observed %s", what, showLeaders(seq))
		}
	}
}

// waitLast waits until the last observation is want (see showLeader).
func (o *leaderObserver) waitLast(t *testing.T, want string) []distsync.Leader {
	t.Helper()
	return o.waitFor(t, want, func(seq []distsync.Leader) bool {
		return len(seq) > 0 && showLeader(seq[len(seq)-1]) == want
	})
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
// leadership it no longer has (etcd's concurrency.Election does; see
// TestEtcdElectionConcurrencyCampaignAfterSessionDied).
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

// everyoneLeads is the control of the leader checks: an "election" in
// which Campaign returns at once, so every candidate leads at the same
// time. It reports each campaign and proclamation to its observers as the
// new leader, and "no leader" when nobody holds leadership.
type everyoneLeads struct {
	mu   sync.Mutex
	term uint64
	live int
	cur  distsync.Leader
	subs map[chan distsync.Leader]bool
}

func newEveryoneLeads() *everyoneLeads {
	return &everyoneLeads{cur: distsync.Leader{None: true}, subs: map[chan distsync.Leader]bool{}}
}

// set publishes a state to every leaderObserver; e.mu is held. Observer channels
// are buffered generously: the control is small.
func (e *everyoneLeads) set(l distsync.Leader) {
	e.cur = l
	for ch := range e.subs {
		ch <- l
	}
}

func (e *everyoneLeads) Campaign(_ context.Context, v []byte) (distsync.Leadership, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.term++
	e.live++
	e.set(distsync.Leader{Term: e.term, Value: bytes.Clone(v)})
	return &fakeLeadership{e: e, term: e.term, done: make(chan struct{})}, nil
}

func (e *everyoneLeads) Leader(context.Context) (distsync.Leader, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur.None {
		return distsync.Leader{}, distsync.ErrNoLeader
	}
	return e.cur, nil
}

func (e *everyoneLeads) Observe(ctx context.Context) <-chan distsync.Leader {
	in := make(chan distsync.Leader, 1000)
	out := make(chan distsync.Leader)
	e.mu.Lock()
	e.subs[in] = true
	in <- e.cur
	e.mu.Unlock()
	go func() {
		defer close(out)
		defer func() {
			e.mu.Lock()
			delete(e.subs, in)
			e.mu.Unlock()
		}()
		for {
			select {
			case l := <-in:
				select {
				case out <- l:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

type fakeLeadership struct {
	e        *everyoneLeads
	term     uint64
	done     chan struct{}
	released bool
}

func (l *fakeLeadership) Token() uint64         { return l.term }
func (l *fakeLeadership) Done() <-chan struct{} { return l.done }
func (l *fakeLeadership) Err() error            { return nil }
func (l *fakeLeadership) Release(context.Context) error {
	l.e.mu.Lock()
	defer l.e.mu.Unlock()
	if !l.released {
		l.released = true
		close(l.done)
		if l.e.live--; l.e.live == 0 {
			l.e.set(distsync.Leader{None: true})
		}
	}
	return nil
}
func (l *fakeLeadership) Proclaim(_ context.Context, v []byte) error {
	l.e.mu.Lock()
	defer l.e.mu.Unlock()
	l.e.set(distsync.Leader{Term: l.term, Value: bytes.Clone(v)})
	return nil
}
