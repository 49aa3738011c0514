package redissync_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
)

// records is an slog handler that keeps every record, with the
// attributes its logger added (slog.Logger.With).
type records struct {
	mu   *sync.Mutex
	recs *[]slog.Record
	with []slog.Attr
}

func newRecords() records { return records{mu: &sync.Mutex{}, recs: new([]slog.Record)} }

func (h records) Enabled(context.Context, slog.Level) bool { return true }
func (h records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r = r.Clone()
	r.AddAttrs(h.with...)
	*h.recs = append(*h.recs, r)
	return nil
}
func (h records) WithAttrs(as []slog.Attr) slog.Handler {
	h.with = append(slices.Clone(h.with), as...)
	return h
}
func (h records) WithGroup(string) slog.Handler { return h }

// find returns the attributes and level of the first record with msg
// whose attribute key has value.
func (h records) find(msg, key, value string) (map[string]string, slog.Level, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range *h.recs {
		if r.Message != msg {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		if attrs[key] == value {
			return attrs, r.Level, true
		}
	}
	return nil, 0, false
}

type outcome struct {
	l   distsync.Lease
	err error
}

// async runs acquire in a goroutine; a lease it gets after the test is
// released at cleanup.
func async(t *testing.T, ctx context.Context, acquire func(context.Context) (distsync.Lease, error)) <-chan outcome {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	c := make(chan outcome, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l, err := acquire(ctx)
		c <- outcome{l, err}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

func await(t *testing.T, c <-chan outcome, what string) outcome {
	t.Helper()
	select {
	case o := <-c:
		return o
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no result within 5s", what)
	}
	return outcome{}
}

// inspectUntil polls Inspect until cond holds.
func inspectUntil(t *testing.T, s distsync.Session, name, what string, cond func(distsync.Status) bool) distsync.Status {
	t.Helper()
	var st distsync.Status
	waitFor(t, what, func() bool {
		var err error
		if st, err = s.Inspect(context.Background(), name); err != nil {
			t.Fatalf("Inspect(%q): %v", name, err)
		}
		return cond(st)
	})
	return st
}

// summary is "identity/mode/weight" for each of hs.
func summary(hs []distsync.Holder) []string {
	var out []string
	for _, h := range hs {
		out = append(out, fmt.Sprintf("%s/%s/%d", h.Identity, h.Mode, h.Weight))
	}
	return out
}

// checkTimes fails t unless every holder and waiter of st arrived about
// now and has a TTL of at most ttl.
func checkTimes(t *testing.T, st distsync.Status, ttl time.Duration) {
	t.Helper()
	for _, h := range append(slices.Clone(st.Holders), st.Waiters...) {
		if h.Token == 0 {
			t.Errorf("%+v: no token", h)
		}
		if d := time.Since(h.Since); d < -time.Second || d > 10*time.Second {
			t.Errorf("%+v: arrived %v ago, want about now", h, d)
		}
		if h.TTL <= 0 || h.TTL > ttl {
			t.Errorf("%+v: TTL %v, want in (0, %v]", h, h.TTL, ttl)
		}
	}
}

// keysLeft lists the keys of name other than its token counter (which
// outlives the name's use on purpose) and an election's history.
func keysLeft(t *testing.T, name string) []string {
	t.Helper()
	k := redisq.KeysFor(name)
	var left []string
	for _, key := range []string{k.Holders, k.Queue, k.QueueExp, k.Tokens, k.Limit, k.Forced} {
		n, err := newClient(t).Exists(context.Background(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			left = append(left, key)
		}
	}
	return left
}

// Inspect shows a Mutex's holder and its waiters in arrival order, with
// identities; ForceRelease fails a waiter at once and ends the holder at
// its next renewal, both with LossForceReleased, and serves the next
// waiter; nothing is left afterwards.
func TestInspectForceReleaseMutex(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const ttl = 600 * time.Millisecond
	name := t.Name()
	open := func(id string) distsync.Mutex {
		return mutex(t, newSession(t, redissync.WithIdentity(id), redissync.WithTTL(ttl)), name)
	}
	ma, mb, mc := open("a"), open("b"), open("c")
	logs := newRecords()
	op := newSession(t, redissync.WithIdentity("operator"), redissync.WithLogger(slog.New(logs)))

	la, err := ma.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rb := async(t, ctx, mb.Lock)
	inspectUntil(t, op, name, "one waiter", func(st distsync.Status) bool { return len(st.Waiters) == 1 })
	rc := async(t, ctx, mc.Lock)
	st := inspectUntil(t, op, name, "two waiters", func(st distsync.Status) bool { return len(st.Waiters) == 2 })
	if got, want := summary(st.Holders), []string{"a/exclusive/1"}; !slices.Equal(got, want) {
		t.Fatalf("holders %v, want %v", got, want)
	}
	if got, want := summary(st.Waiters), []string{"b/exclusive/1", "c/exclusive/1"}; !slices.Equal(got, want) {
		t.Fatalf("waiters %v, want %v", got, want)
	}
	if st.Holders[0].Token != la.Token() || st.Limit != 0 || st.Name != name {
		t.Fatalf("status %+v, want the holder's token %d, no limit", st, la.Token())
	}
	if st.Waiters[0].Token >= st.Waiters[1].Token || st.Waiters[0].Token <= la.Token() {
		t.Fatalf("waiters' tokens %d, %d: want arrival numbers above the holder's %d, in order",
			st.Waiters[0].Token, st.Waiters[1].Token, la.Token())
	}
	checkTimes(t, st, ttl)

	// A waiter removed by force fails at once, not at its next re-check.
	start := time.Now()
	if err := op.ForceRelease(ctx, name, st.Waiters[1].Token); err != nil {
		t.Fatalf("ForceRelease of a waiter: %v", err)
	}
	o := await(t, rc, "the waiter removed by force")
	wantErr(t, "Lock of the waiter removed by force", o.err, distsync.ErrLost)
	if got := distsync.LostReason(o.err); got != distsync.LossForceReleased {
		t.Fatalf("waiter's reason %q (%v), want %q", got, o.err, distsync.LossForceReleased)
	}
	if took := time.Since(start); took > ttl/3 {
		t.Errorf("the waiter failed %v after ForceRelease, want at once", took)
	}

	// The holder: told at its next renewal; the next waiter is served at once.
	start = time.Now()
	if err := op.ForceRelease(ctx, name, la.Token()); err != nil {
		t.Fatalf("ForceRelease of the holder: %v", err)
	}
	o = await(t, rb, "the next waiter")
	if o.err != nil {
		t.Fatalf("the next waiter: %v", o.err)
	}
	select {
	case <-la.Done():
	case <-time.After(ttl):
		t.Fatalf("holder not told within %v of ForceRelease", ttl)
	}
	if took := time.Since(start); took > ttl/3+ttl/5 {
		t.Errorf("holder told %v after ForceRelease, want within TTL/3 (%v)", took, ttl/3)
	}
	wantErr(t, "the holder removed by force", la.Err(), distsync.ErrLost)
	if got := distsync.LostReason(la.Err()); got != distsync.LossForceReleased {
		t.Fatalf("holder's reason %q (%v), want %q", got, la.Err(), distsync.LossForceReleased)
	}
	if o.l.Token() <= la.Token() {
		t.Fatalf("next token %d, not above %d", o.l.Token(), la.Token())
	}
	st = inspectUntil(t, op, name, "b holding alone", func(st distsync.Status) bool { return len(st.Holders) == 1 })
	if got, want := summary(st.Holders), []string{"b/exclusive/1"}; !slices.Equal(got, want) || len(st.Waiters) != 0 {
		t.Fatalf("after ForceRelease: holders %v waiters %v, want %v alone", got, summary(st.Waiters), want)
	}

	// The log says who was removed, at Warn.
	attrs, level, ok := logs.find("force release", "token", fmt.Sprint(la.Token()))
	if !ok {
		t.Fatal("ForceRelease logged nothing")
	}
	if level != slog.LevelWarn || attrs["name"] != name || attrs["identity"] != "a" ||
		attrs["token"] != fmt.Sprint(la.Token()) || attrs["backend"] != "redis" {
		t.Errorf("ForceRelease logged %v at %v, want Warn with name, token %d, identity a, backend redis", attrs, level, la.Token())
	}

	wantErr(t, "ForceRelease of a token gone", op.ForceRelease(ctx, name, la.Token()), distsync.ErrNotFound)
	if err := la.Release(ctx); err != nil {
		t.Fatalf("Release after ForceRelease: %v", err)
	}
	if err := o.l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if left := keysLeft(t, name); len(left) != 0 {
		t.Fatalf("keys left after everything ended: %v", left)
	}
}

// Inspect tells every kind's modes, weights and limit apart.
func TestInspectEveryKind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const ttl = time.Second
	op := newSession(t)
	as := func(id string) *redissync.Session {
		return newSession(t, redissync.WithIdentity(id), redissync.WithTTL(ttl))
	}

	t.Run("RWMutex", func(t *testing.T) {
		name := t.Name()
		rw := func(id string) distsync.RWMutex {
			m, err := as(id).RWMutex(name)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		r1, r2, w, r3 := rw("r1"), rw("r2"), rw("w"), rw("r3")
		l1, err := r1.RLock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		l2, err := r2.RLock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rw1 := async(t, ctx, w.Lock)
		inspectUntil(t, op, name, "a writer waiting", func(st distsync.Status) bool { return len(st.Waiters) == 1 })
		rr := async(t, ctx, r3.RLock)
		st := inspectUntil(t, op, name, "a writer and a reader waiting", func(st distsync.Status) bool { return len(st.Waiters) == 2 })
		if got, want := summary(st.Holders), []string{"r1/read/1", "r2/read/1"}; !slices.Equal(got, want) {
			t.Fatalf("holders %v, want %v", got, want)
		}
		if got, want := summary(st.Waiters), []string{"w/write/1", "r3/read/1"}; !slices.Equal(got, want) {
			t.Fatalf("waiters %v, want %v", got, want)
		}
		checkTimes(t, st, ttl)
		for _, l := range []distsync.Lease{l1, l2} {
			if err := op.ForceRelease(ctx, name, l.Token()); err != nil {
				t.Fatal(err)
			}
		}
		o := await(t, rw1, "the writer")
		if o.err != nil {
			t.Fatal(o.err)
		}
		st = inspectUntil(t, op, name, "the writer holding", func(st distsync.Status) bool { return len(st.Holders) == 1 })
		if got, want := summary(st.Holders), []string{"w/write/1"}; !slices.Equal(got, want) {
			t.Fatalf("holders %v, want %v", got, want)
		}
		for _, l := range []distsync.Lease{l1, l2} {
			<-l.Done()
			if got := distsync.LostReason(l.Err()); got != distsync.LossForceReleased {
				t.Fatalf("reader's reason %q, want %q", got, distsync.LossForceReleased)
			}
		}
		_ = o.l.Release(ctx)
		o = await(t, rr, "the last reader")
		if o.err != nil {
			t.Fatal(o.err)
		}
		_ = o.l.Release(ctx)
		if left := keysLeft(t, name); len(left) != 0 {
			t.Fatalf("keys left: %v", left)
		}
	})

	t.Run("Semaphore", func(t *testing.T) {
		name := t.Name()
		sem := func(id string) distsync.Semaphore { return semaphore(t, as(id), name, 3) }
		p1, p2, p3 := sem("p1"), sem("p2"), sem("p3")
		l1, err := p1.AcquireN(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		l2, err := p2.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r3 := async(t, ctx, func(ctx context.Context) (distsync.Lease, error) { return p3.AcquireN(ctx, 2) })
		st := inspectUntil(t, op, name, "a waiter", func(st distsync.Status) bool { return len(st.Waiters) == 1 })
		if got, want := summary(st.Holders), []string{"p1/permit/2", "p2/permit/1"}; !slices.Equal(got, want) {
			t.Fatalf("holders %v, want %v", got, want)
		}
		if got, want := summary(st.Waiters), []string{"p3/permit/2"}; !slices.Equal(got, want) {
			t.Fatalf("waiters %v, want %v", got, want)
		}
		if st.Limit != 3 {
			t.Fatalf("limit %d, want 3", st.Limit)
		}
		checkTimes(t, st, ttl)
		if err := op.ForceRelease(ctx, name, l1.Token()); err != nil {
			t.Fatal(err)
		}
		o := await(t, r3, "the waiter for 2")
		if o.err != nil {
			t.Fatal(o.err)
		}
		<-l1.Done()
		if got := distsync.LostReason(l1.Err()); got != distsync.LossForceReleased {
			t.Fatalf("reason %q, want %q", got, distsync.LossForceReleased)
		}
		_ = o.l.Release(ctx)
		_ = l2.Release(ctx)
		if left := keysLeft(t, name); len(left) != 0 {
			t.Fatalf("keys left: %v", left)
		}
	})

	t.Run("Election", func(t *testing.T) {
		name := t.Name()
		el := func(id string) distsync.Election {
			e, err := as(id).Election(name)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		ea, eb := el("lead"), el("cand")
		la, err := ea.Campaign(ctx, []byte("a"))
		if err != nil {
			t.Fatal(err)
		}
		rb := async(t, ctx, func(ctx context.Context) (distsync.Lease, error) {
			l, err := eb.Campaign(ctx, []byte("b"))
			if err != nil {
				return nil, err
			}
			return l, nil
		})
		st := inspectUntil(t, op, name, "a candidate", func(st distsync.Status) bool { return len(st.Waiters) == 1 })
		if got, want := summary(st.Holders), []string{"lead/exclusive/1"}; !slices.Equal(got, want) || st.Holders[0].Token != la.Token() {
			t.Fatalf("holders %v (token %d), want %v with the term %d", got, st.Holders[0].Token, want, la.Token())
		}
		if got, want := summary(st.Waiters), []string{"cand/exclusive/1"}; !slices.Equal(got, want) {
			t.Fatalf("waiters %v, want %v", got, want)
		}
		checkTimes(t, st, ttl)
		if err := op.ForceRelease(ctx, name, la.Token()); err != nil {
			t.Fatal(err)
		}
		// Proclaim fails with the reason at once; the lease ends at its
		// next renewal.
		perr := la.(distsync.Leadership).Proclaim(ctx, []byte("a2"))
		if got := distsync.LostReason(perr); got != distsync.LossForceReleased {
			t.Errorf("Proclaim after ForceRelease: %v (reason %q), want %q", perr, got, distsync.LossForceReleased)
		}
		o := await(t, rb, "the candidate")
		if o.err != nil {
			t.Fatal(o.err)
		}
		if l, err := ea.Leader(ctx); err != nil || string(l.Value) != "b" || l.Term != o.l.Token() {
			t.Fatalf("leader %+v, %v; want b with term %d", l, err, o.l.Token())
		}
		<-la.Done()
		if got := distsync.LostReason(la.Err()); got != distsync.LossForceReleased {
			t.Fatalf("reason %q, want %q", got, distsync.LossForceReleased)
		}
		_ = o.l.Release(ctx)
		if left := keysLeft(t, name); len(left) != 0 {
			t.Fatalf("keys left: %v", left)
		}
	})
}

// Inspect and ForceRelease check their input and the Session.
func TestInspectForceReleaseErrors(t *testing.T) {
	ctx := context.Background()
	s := newSession(t)
	st, err := s.Inspect(ctx, t.Name())
	if err != nil || len(st.Holders)+len(st.Waiters) != 0 || st.Name != t.Name() {
		t.Fatalf("Inspect of an idle name: %+v, %v", st, err)
	}
	wantErr(t, "ForceRelease of an idle name", s.ForceRelease(ctx, t.Name(), 1), distsync.ErrNotFound)
	_, err = s.Inspect(ctx, "")
	wantErr(t, "Inspect(\"\")", err, distsync.ErrInvalidName)
	wantErr(t, "ForceRelease(\"\")", s.ForceRelease(ctx, "", 1), distsync.ErrInvalidName)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Inspect(cctx, t.Name())
	wantErr(t, "Inspect with an ended context", err, distsync.ErrUnavailable)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Inspect with an ended context: %v, want context.Canceled too", err)
	}
	_ = s.Close()
	_, err = s.Inspect(ctx, t.Name())
	wantErr(t, "Inspect after Close", err, distsync.ErrClosed)
	wantErr(t, "ForceRelease after Close", s.ForceRelease(ctx, t.Name(), 1), distsync.ErrClosed)
}

// Every loss says why: deleted from outside, renewal not confirmed in
// time, the Session closed.
func TestLossReasons(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const ttl = 300 * time.Millisecond
	s := newSession(t, redissync.WithTTL(ttl))
	m := mutex(t, s, t.Name())
	for _, c := range []struct {
		what string
		do   func(distsync.Lease)
		want distsync.LossReason
	}{
		{"deleted", func(l distsync.Lease) {
			if err := redisq.DeleteMember(ctx, newClient(t), l); err != nil {
				t.Fatal(err)
			}
		}, distsync.LossDeleted},
		{"not renewed", func(l distsync.Lease) { redisq.SuspendRenewal(l, true) }, distsync.LossRenewal},
		{"session closed", func(distsync.Lease) { _ = s.Close() }, distsync.LossSessionEnded},
	} {
		l, err := m.Lock(ctx)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		c.do(l)
		select {
		case <-l.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: lease not ended", c.what)
		}
		if got := distsync.LostReason(l.Err()); got != c.want {
			t.Errorf("%s: reason %q (%v), want %q", c.what, got, l.Err(), c.want)
		}
		if !strings.Contains(l.Err().Error(), t.Name()) {
			t.Errorf("%s: %v does not name the lock", c.what, l.Err())
		}
		_ = l.Release(ctx)
	}
}

// A lease deleted from outside is logged: its failed renewal and its
// loss at Warn, its acquisition at Debug.
func TestLossLogged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	logs := newRecords()
	s := newSession(t, redissync.WithTTL(300*time.Millisecond), redissync.WithIdentity("logged"),
		redissync.WithLogger(slog.New(logs)))
	l, err := mutex(t, s, t.Name()).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok := fmt.Sprint(l.Token())
	if err := redisq.DeleteMember(ctx, newClient(t), l); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	// The loss is recorded just after Done closes.
	waitFor(t, "the loss logged", func() bool { _, _, ok := logs.find("lease lost", "token", tok); return ok })
	for _, want := range []struct {
		msg   string
		level slog.Level
	}{{"acquired", slog.LevelDebug}, {"renewal failed", slog.LevelWarn}, {"lease lost", slog.LevelWarn}} {
		attrs, level, ok := logs.find(want.msg, "token", tok)
		if !ok || level != want.level || attrs["name"] != t.Name() || attrs["identity"] != "logged" {
			t.Errorf("%q: %v at %v (found %v), want %v with name, token and identity", want.msg, attrs, level, ok, want.level)
		}
	}
	if attrs, _, _ := logs.find("lease lost", "token", tok); attrs["reason"] != string(distsync.LossDeleted) {
		t.Errorf("lease lost: reason %q, want %q", attrs["reason"], distsync.LossDeleted)
	}
}
