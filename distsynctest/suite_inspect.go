package distsynctest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// testInspectConformance checks the operator's calls on b: Inspect shows
// every kind's holders and waiters in order, with identities and modes,
// and ForceRelease ends a holder (or a waiter) with LossForceReleased and
// serves the next waiter.
func testInspectConformance(t *testing.T, b *suite) {
	t.Run("Mutex", func(t *testing.T) { testInspectMutex(t, b) })
	t.Run("RWMutex", func(t *testing.T) { testInspectRWMutex(t, b) })
	t.Run("Semaphore", func(t *testing.T) { testInspectSemaphore(t, b) })
	t.Run("Election", func(t *testing.T) { testInspectElection(t, b) })
	t.Run("BadInput", func(t *testing.T) {
		op := b.openChecked(t)
		ctx := context.Background()
		if _, err := op.Inspect(ctx, ""); !errors.Is(err, distsync.ErrInvalidName) {
			t.Errorf("Inspect(\"\"): %v, want ErrInvalidName", err)
		}
		if err := op.ForceRelease(ctx, "", 1); !errors.Is(err, distsync.ErrInvalidName) {
			t.Errorf("ForceRelease(\"\"): %v, want ErrInvalidName", err)
		}
		st, err := op.Inspect(ctx, t.Name()+"-idle")
		if err != nil || len(st.Holders) != 0 || len(st.Waiters) != 0 || st.Limit != 0 {
			t.Errorf("Inspect of an idle name: %+v, %v; want nothing", st, err)
		}
		if err := op.ForceRelease(ctx, t.Name()+"-idle", 12345); !errors.Is(err, distsync.ErrNotFound) {
			t.Errorf("ForceRelease of an idle name: %v, want ErrNotFound", err)
		}
		ctx2, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := op.Inspect(ctx2, t.Name()); err == nil {
			t.Error("Inspect with an ended context succeeded")
		}
	})
}

// inspectUntil polls Inspect until cond holds (waiters enqueue in their own
// goroutines), and returns that Status.
func inspectUntil(t *testing.T, s distsync.Session, name, what string, cond func(distsync.Status) bool) distsync.Status {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := s.Inspect(context.Background(), name)
		if err != nil {
			t.Fatalf("Inspect(%q): %v", name, err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("Inspect(%q): want %s within 15s, last %s", name, what, showStatus(st))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func showStatus(st distsync.Status) string {
	one := func(hs []distsync.Holder) []string {
		var out []string
		for _, h := range hs {
			out = append(out, fmt.Sprintf("%s/%s/%d/w%d", h.Identity, h.Mode, h.Token, h.Weight))
		}
		return out
	}
	return fmt.Sprintf("limit %d holders %v waiters %v", st.Limit, one(st.Holders), one(st.Waiters))
}

func identities(hs []distsync.Holder) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Identity)
	}
	return out
}

func modes(hs []distsync.Holder) []distsync.Mode {
	var out []distsync.Mode
	for _, h := range hs {
		out = append(out, h.Mode)
	}
	return out
}

// checkHolder checks the fields every backend fills.
func checkHolder(t *testing.T, h distsync.Holder) {
	t.Helper()
	if h.Token == 0 {
		t.Errorf("holder %+v has no token", h)
	}
	if h.Weight < 1 {
		t.Errorf("holder %+v has weight %d, want at least 1", h, h.Weight)
	}
	if h.TTL < 0 || h.TTL > time.Minute {
		t.Errorf("holder %+v has TTL %v", h, h.TTL)
	}
	if !h.Since.IsZero() && (time.Since(h.Since) > 5*time.Minute || time.Until(h.Since) > time.Minute) {
		t.Errorf("holder %+v joined at %v, not about now", h, h.Since)
	}
}

// acquireAsync runs acquire in a goroutine; its result arrives on the
// channel.
type acqResult struct {
	l   distsync.Lease
	err error
}

func acquireAsync(ctx context.Context, acquire func(context.Context) (distsync.Lease, error)) <-chan acqResult {
	ch := make(chan acqResult, 1)
	go func() {
		l, err := acquire(ctx)
		ch <- acqResult{l, err}
	}()
	return ch
}

func awaitResult(t *testing.T, ch <-chan acqResult, what string) acqResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: no result within 20s", what)
		return acqResult{}
	}
}

func awaitLost(t *testing.T, l distsync.Lease, want distsync.LossReason) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("lease not ended within 20s of ForceRelease")
	}
	if got := distsync.LostReason(l.Err()); got != want {
		t.Fatalf("lease ended with %v (reason %q), want reason %q", l.Err(), got, want)
	}
}

func testInspectMutex(t *testing.T, b *suite) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := t.Name()
	open := func(id string) distsync.Mutex {
		m, err := b.sessionAs(t, id).Mutex(name)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ma, mb, mc := open("ins-a"), open("ins-b"), open("ins-c")
	op := b.sessionAs(t, "operator")

	la, err := ma.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rb := acquireAsync(ctx, mb.Lock)
	inspectUntil(t, op, name, "one waiter", func(st distsync.Status) bool { return len(st.Waiters) == 1 })
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	rc := acquireAsync(wctx, mc.Lock)
	st := inspectUntil(t, op, name, "two waiters", func(st distsync.Status) bool { return len(st.Waiters) == 2 })

	if len(st.Holders) != 1 || st.Holders[0].Token != la.Token() || st.Holders[0].Identity != "ins-a" ||
		st.Holders[0].Mode != distsync.ModeExclusive {
		t.Fatalf("Inspect: %s; want ins-a holding with token %d, exclusive", showStatus(st), la.Token())
	}
	if got := identities(st.Waiters); !slices.Equal(got, []string{"ins-b", "ins-c"}) {
		t.Fatalf("waiters %v, want [ins-b ins-c] in queue order", got)
	}
	if got := modes(st.Waiters); !slices.Equal(got, []distsync.Mode{distsync.ModeExclusive, distsync.ModeExclusive}) {
		t.Fatalf("waiters' modes %v, want exclusive", got)
	}
	for _, h := range append(st.Holders, st.Waiters...) {
		checkHolder(t, h)
	}
	if st.Limit != 0 {
		t.Fatalf("a mutex's Limit %d, want 0", st.Limit)
	}

	// A waiter released by force fails its acquisition.
	if err := op.ForceRelease(ctx, name, st.Waiters[1].Token); err != nil {
		t.Fatalf("ForceRelease of a waiter: %v", err)
	}
	r := awaitResult(t, rc, "the waiter released by force")
	if r.err == nil || distsync.LostReason(r.err) != distsync.LossForceReleased {
		t.Fatalf("Lock of a waiter released by force: %v, %v; want an error with reason %q", r.l, r.err, distsync.LossForceReleased)
	}

	// The holder released by force is told, and the next waiter gets it.
	if err := op.ForceRelease(ctx, name, la.Token()); err != nil {
		t.Fatalf("ForceRelease of the holder: %v", err)
	}
	awaitLost(t, la, distsync.LossForceReleased)
	r = awaitResult(t, rb, "the next waiter")
	if r.err != nil {
		t.Fatalf("next waiter after ForceRelease: %v", r.err)
	}
	st = inspectUntil(t, op, name, "ins-b holding alone", func(st distsync.Status) bool {
		return len(st.Holders) == 1 && len(st.Waiters) == 0
	})
	if st.Holders[0].Identity != "ins-b" || st.Holders[0].Token != r.l.Token() {
		t.Fatalf("after ForceRelease: %s; want ins-b holding with token %d", showStatus(st), r.l.Token())
	}
	if err := op.ForceRelease(ctx, name, la.Token()); !errors.Is(err, distsync.ErrNotFound) {
		t.Fatalf("ForceRelease of a token already released: %v, want ErrNotFound", err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatalf("Release of a lease released by force: %v", err)
	}
	if err := r.l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	st = inspectUntil(t, op, name, "nothing", func(st distsync.Status) bool { return len(st.Holders)+len(st.Waiters) == 0 })
	if k := b.keys(t, name); len(k) != 0 {
		t.Fatalf("backend state left after everything ended: %v", k)
	}
}

func testInspectRWMutex(t *testing.T, b *suite) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := t.Name()
	open := func(id string) distsync.RWMutex {
		m, err := b.sessionAs(t, id).RWMutex(name)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	r1, r2, w, r3 := open("r1"), open("r2"), open("w"), open("r3")
	op := b.sessionAs(t, "operator")
	l1, err := r1.RLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := r2.RLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rw := acquireAsync(ctx, w.Lock)
	inspectUntil(t, op, name, "a waiting writer", func(st distsync.Status) bool { return len(st.Waiters) == 1 })
	rr := acquireAsync(ctx, r3.RLock)
	st := inspectUntil(t, op, name, "a writer and a reader waiting", func(st distsync.Status) bool { return len(st.Waiters) == 2 })
	if got := identities(st.Holders); len(got) != 2 || !slices.Contains(got, "r1") || !slices.Contains(got, "r2") {
		t.Fatalf("holders %v, want r1 and r2 (%s)", got, showStatus(st))
	}
	if got := modes(st.Holders); !slices.Equal(got, []distsync.Mode{distsync.ModeRead, distsync.ModeRead}) {
		t.Fatalf("holders' modes %v, want read, read", got)
	}
	if got, want := identities(st.Waiters), []string{"w", "r3"}; !slices.Equal(got, want) {
		t.Fatalf("waiters %v, want %v (the reader waits behind the writer)", got, want)
	}
	if got := modes(st.Waiters); !slices.Equal(got, []distsync.Mode{distsync.ModeWrite, distsync.ModeRead}) {
		t.Fatalf("waiters' modes %v, want write, read", got)
	}
	for _, h := range append(st.Holders, st.Waiters...) {
		checkHolder(t, h)
	}
	// Both readers released by force: the writer gets it.
	for _, l := range []distsync.Lease{l1, l2} {
		if err := op.ForceRelease(ctx, name, l.Token()); err != nil {
			t.Fatal(err)
		}
		awaitLost(t, l, distsync.LossForceReleased)
	}
	res := awaitResult(t, rw, "the writer")
	if res.err != nil {
		t.Fatal(res.err)
	}
	st = inspectUntil(t, op, name, "the writer holding", func(st distsync.Status) bool { return len(st.Holders) == 1 })
	if st.Holders[0].Mode != distsync.ModeWrite || st.Holders[0].Identity != "w" {
		t.Fatalf("after the readers were released: %s, want w writing", showStatus(st))
	}
	_ = res.l.Release(ctx)
	res = awaitResult(t, rr, "the last reader")
	if res.err != nil {
		t.Fatal(res.err)
	}
	_ = res.l.Release(ctx)
	inspectUntil(t, op, name, "nothing", func(st distsync.Status) bool { return len(st.Holders)+len(st.Waiters) == 0 })
}

func testInspectSemaphore(t *testing.T, b *suite) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := t.Name()
	open := func(id string) distsync.Semaphore {
		s, err := b.sessionAs(t, id).Semaphore(ctx, name, 3)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sa, sb, sc := open("p1"), open("p2"), open("p3")
	op := b.sessionAs(t, "operator")
	la, err := sa.AcquireN(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := sb.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rc := acquireAsync(ctx, func(ctx context.Context) (distsync.Lease, error) { return sc.AcquireN(ctx, 2) })
	st := inspectUntil(t, op, name, "one waiter", func(st distsync.Status) bool { return len(st.Waiters) == 1 })
	if st.Limit != 3 {
		t.Fatalf("Limit %d, want 3", st.Limit)
	}
	if got := identities(st.Holders); !slices.Equal(got, []string{"p1", "p2"}) {
		t.Fatalf("holders %v, want [p1 p2] (%s)", got, showStatus(st))
	}
	if st.Holders[0].Weight != 2 || st.Holders[1].Weight != 1 || st.Waiters[0].Weight != 2 {
		t.Fatalf("weights: %s; want 2, 1 holding and 2 waiting", showStatus(st))
	}
	for _, h := range append(st.Holders, st.Waiters...) {
		checkHolder(t, h)
		if h.Mode != distsync.ModePermit {
			t.Fatalf("semaphore holder %+v: mode %q, want permit", h, h.Mode)
		}
	}
	if err := op.ForceRelease(ctx, name, la.Token()); err != nil {
		t.Fatal(err)
	}
	awaitLost(t, la, distsync.LossForceReleased)
	res := awaitResult(t, rc, "the waiter for 2 permits")
	if res.err != nil {
		t.Fatal(res.err)
	}
	_ = res.l.Release(ctx)
	_ = lb.Release(ctx)
	inspectUntil(t, op, name, "nothing", func(st distsync.Status) bool { return len(st.Holders)+len(st.Waiters) == 0 && st.Limit == 0 })
}

func testInspectElection(t *testing.T, b *suite) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := t.Name()
	open := func(id string) distsync.Election {
		e, err := b.sessionAs(t, id).Election(name)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	ea, eb := open("cand-a"), open("cand-b")
	op := b.sessionAs(t, "operator")
	la, err := ea.Campaign(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	rb := acquireAsync(ctx, func(ctx context.Context) (distsync.Lease, error) {
		l, err := eb.Campaign(ctx, []byte("b"))
		if l == nil {
			return nil, err
		}
		return l, err
	})
	st := inspectUntil(t, op, name, "a leader and a candidate", func(st distsync.Status) bool {
		return len(st.Holders) == 1 && len(st.Waiters) == 1
	})
	if st.Holders[0].Token != la.Token() {
		t.Fatalf("leader token %d, want %d (%s)", st.Holders[0].Token, la.Token(), showStatus(st))
	}
	for _, h := range append(st.Holders, st.Waiters...) {
		checkHolder(t, h)
	}
	if err := op.ForceRelease(ctx, name, la.Token()); err != nil {
		t.Fatal(err)
	}
	awaitLost(t, la, distsync.LossForceReleased)
	res := awaitResult(t, rb, "the next candidate")
	if res.err != nil {
		t.Fatal(res.err)
	}
	if l, err := ea.Leader(ctx); err != nil || string(l.Value) != "b" {
		t.Fatalf("leader after ForceRelease: %+v, %v; want b", l, err)
	}
	_ = res.l.Release(ctx)
}
