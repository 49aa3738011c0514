package distsynctest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

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
