package zksync_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/go-zookeeper/zk"
)

// inspectTimeout bounds each test of this file.
const inspectTimeout = 30 * time.Second

// acquisition is one acquire call that may wait, run in the background.
type acquisition struct {
	l    distsync.Lease
	err  error
	done chan struct{}
}

// start runs f in the background and waits until the name's node at path
// has n children: f's node is then the n-th in the queue.
// At cleanup it cancels f's context, waits for f and releases its lease.
func start(t *testing.T, c *zk.Conn, path string, n int, f func(ctx context.Context) (distsync.Lease, error)) *acquisition {
	t.Helper()
	a := &acquisition{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(a.done)
		a.l, a.err = f(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-a.done
		if a.l != nil {
			_ = a.l.Release(context.Background())
		}
	})
	waitChildren(t, c, path, n)
	return a
}

// wait returns the acquisition's result, failing the test after 10s.
func (a *acquisition) wait(t *testing.T) (distsync.Lease, error) {
	t.Helper()
	select {
	case <-a.done:
		return a.l, a.err
	case <-time.After(10 * time.Second):
		t.Fatal("acquisition still waiting after 10s")
		return nil, nil
	}
}

// holder is a Holder without its token and time, for comparisons.
type holder struct {
	Identity string
	Mode     distsync.Mode
	Weight   int64
}

func strip(hs []distsync.Holder) []holder {
	var out []holder
	for _, h := range hs {
		out = append(out, holder{h.Identity, h.Mode, h.Weight})
	}
	return out
}

// inspect runs Inspect and checks what every Holder has in common: a
// creation time of the last minute, no TTL, distinct increasing tokens.
func inspect(t *testing.T, s *zksync.Session, name string) distsync.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.Inspect(ctx, name)
	if err != nil {
		t.Fatalf("Inspect(%q): %v", name, err)
	}
	if st.Name != name {
		t.Errorf("Status.Name = %q, want %q", st.Name, name)
	}
	var last uint64
	for _, h := range append(slices.Clone(st.Holders), st.Waiters...) {
		if age := time.Since(h.Since); age < -time.Minute || age > time.Minute {
			t.Errorf("%+v: Since %v, want about now", h, h.Since)
		}
		if h.TTL != 0 {
			t.Errorf("%+v: TTL %v, want 0 (ephemeral nodes)", h, h.TTL)
		}
		if h.Token <= last {
			t.Errorf("%+v: token %d not above the previous %d", h, h.Token, last)
		}
		last = h.Token
	}
	return st
}

func checkStatus(t *testing.T, st distsync.Status, holders, waiters []holder) {
	t.Helper()
	if got := strip(st.Holders); !slices.Equal(got, holders) {
		t.Errorf("holders %+v, want %+v", got, holders)
	}
	if got := strip(st.Waiters); !slices.Equal(got, waiters) {
		t.Errorf("waiters %+v, want %+v", got, waiters)
	}
}

// TestInspect: Inspect shows the holders and the waiters of each kind of
// primitive in queue order, with their identities, modes and weights, and
// a waiter's token is the one its Lease gets.
func TestInspect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
	defer cancel()
	a := session(t, zksync.WithIdentity("a"))
	b := session(t, zksync.WithIdentity("b"))
	c := session(t, zksync.WithIdentity("c"))
	d := session(t, zksync.WithIdentity("d"))
	op := session(t)
	zc := op.Conn()

	t.Run("Mutex", func(t *testing.T) {
		name := t.Name()
		if st := inspect(t, op, name); len(st.Holders)+len(st.Waiters) != 0 || st.Limit != 0 {
			t.Fatalf("idle name: %+v, want nothing", st)
		}
		ma, _ := a.Mutex(name)
		la, err := ma.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer la.Release(ctx)
		path := ma.(*zksync.Mutex).Path()
		mb, _ := b.Mutex(name)
		wb := start(t, zc, path, 2, func(ctx context.Context) (distsync.Lease, error) { return mb.Lock(ctx) })
		mc, _ := c.Mutex(name)
		start(t, zc, path, 3, func(ctx context.Context) (distsync.Lease, error) { return mc.Lock(ctx) })
		st := inspect(t, op, name)
		x := distsync.ModeExclusive
		checkStatus(t, st, []holder{{"a", x, 1}}, []holder{{"b", x, 1}, {"c", x, 1}})
		if st.Holders[0].Token != la.Token() {
			t.Errorf("holder token %d, want the lease's %d", st.Holders[0].Token, la.Token())
		}
		_ = la.Release(ctx)
		lb, err := wb.wait(t)
		if err != nil {
			t.Fatal(err)
		}
		if lb.Token() != st.Waiters[0].Token {
			t.Errorf("waiter's lease token %d, want the token Inspect showed, %d", lb.Token(), st.Waiters[0].Token)
		}
	})

	t.Run("RWMutex", func(t *testing.T) {
		name := t.Name()
		rwa, _ := a.RWMutex(name)
		la, err := rwa.RLock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer la.Release(ctx)
		rwb, _ := b.RWMutex(name)
		lb, err := rwb.RLock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer lb.Release(ctx)
		path := rwa.(*zksync.RWMutex).Path()
		rwc, _ := c.RWMutex(name)
		start(t, zc, path, 3, func(ctx context.Context) (distsync.Lease, error) { return rwc.Lock(ctx) })
		rwd, _ := d.RWMutex(name)
		start(t, zc, path, 4, func(ctx context.Context) (distsync.Lease, error) { return rwd.RLock(ctx) })
		r, w := distsync.ModeRead, distsync.ModeWrite
		checkStatus(t, inspect(t, op, name), []holder{{"a", r, 1}, {"b", r, 1}}, []holder{{"c", w, 1}, {"d", r, 1}})
	})

	t.Run("Semaphore", func(t *testing.T) {
		name := t.Name()
		sa := semaphore(t, a, name, 3)
		la, err := sa.AcquireN(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer la.Release(ctx)
		lb, err := semaphore(t, b, name, 3).Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer lb.Release(ctx)
		sc := semaphore(t, c, name, 3)
		start(t, zc, sa.Path(), 3, func(ctx context.Context) (distsync.Lease, error) { return sc.AcquireN(ctx, 2) })
		sd := semaphore(t, d, name, 3)
		start(t, zc, sa.Path(), 4, func(ctx context.Context) (distsync.Lease, error) { return sd.Acquire(ctx) })
		st := inspect(t, op, name)
		p := distsync.ModePermit
		checkStatus(t, st, []holder{{"a", p, 2}, {"b", p, 1}}, []holder{{"c", p, 2}, {"d", p, 1}})
		if st.Limit != 3 {
			t.Errorf("Limit = %d, want 3", st.Limit)
		}
		// SetLimit wakes every node by writing it again: the identities
		// stay.
		if err := sa.SetLimit(ctx, 3); err != nil {
			t.Fatal(err)
		}
		checkStatus(t, inspect(t, op, name), []holder{{"a", p, 2}, {"b", p, 1}}, []holder{{"c", p, 2}, {"d", p, 1}})
	})

	t.Run("Election", func(t *testing.T) {
		name := t.Name()
		ea, _ := a.Election(name)
		la, err := ea.Campaign(ctx, []byte("leader-a"))
		if err != nil {
			t.Fatal(err)
		}
		defer la.Release(ctx)
		eb, _ := b.Election(name)
		start(t, zc, ea.(*zksync.Election).Path(), 2, func(ctx context.Context) (distsync.Lease, error) { return eb.Campaign(ctx, []byte("candidate-b")) })
		if err := la.Proclaim(ctx, []byte("proclaimed-a")); err != nil {
			t.Fatal(err)
		}
		x := distsync.ModeExclusive
		checkStatus(t, inspect(t, op, name), []holder{{"proclaimed-a", x, 1}}, []holder{{"candidate-b", x, 1}})
	})
}

// TestInspectErrors: a bad name, a closed Session.
func TestInspectErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
	defer cancel()
	s := session(t)
	if _, err := s.Inspect(ctx, ""); !errors.Is(err, distsync.ErrInvalidName) {
		t.Errorf("Inspect(\"\"): %v, want ErrInvalidName", err)
	}
	if err := s.ForceRelease(ctx, "bad\x00", 1); !errors.Is(err, distsync.ErrInvalidName) {
		t.Errorf("ForceRelease(bad name): %v, want ErrInvalidName", err)
	}
	if err := s.ForceRelease(ctx, t.Name(), 1); !errors.Is(err, distsync.ErrNotFound) {
		t.Errorf("ForceRelease on an idle name: %v, want ErrNotFound", err)
	}
	_ = s.Close()
	if _, err := s.Inspect(ctx, t.Name()); !errors.Is(err, distsync.ErrClosed) {
		t.Errorf("Inspect after Close: %v, want ErrClosed", err)
	}
	if err := s.ForceRelease(ctx, t.Name(), 1); !errors.Is(err, distsync.ErrClosed) {
		t.Errorf("ForceRelease after Close: %v, want ErrClosed", err)
	}
}

// records is an slog.Handler that keeps the records it is given.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r } // the backend attribute is not checked
func (r *records) WithGroup(string) slog.Handler      { return r }

// find returns the attributes of the first record at level with msg.
func (r *records) find(level slog.Level, msg string) (map[string]slog.Value, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Level == level && rec.Message == msg {
			attrs := map[string]slog.Value{}
			rec.Attrs(func(a slog.Attr) bool {
				attrs[a.Key] = a.Value
				return true
			})
			return attrs, true
		}
	}
	return nil, false
}

// lostBy waits for l to end and checks it was lost for reason.
func lostBy(t *testing.T, what string, l distsync.Lease, reason distsync.LossReason) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: lease not ended 10s after its node was removed", what)
	}
	if got := distsync.LostReason(l.Err()); got != reason {
		t.Errorf("%s: Err %v, reason %q, want %q", what, l.Err(), got, reason)
	}
}

// TestForceReleaseHolder: for each kind, ForceRelease ends the holder's
// lease with LossForceReleased at once, the next waiter gets it, the
// removal is logged at Warn with the holder's identity and token, a second
// ForceRelease of the token is ErrNotFound, and nothing is left once the
// next holder releases.
func TestForceReleaseHolder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
	defer cancel()
	alogs, logs := &records{}, &records{}
	a := session(t, zksync.WithIdentity("a"), zksync.WithLogger(slog.New(alogs)))
	b := session(t, zksync.WithIdentity("b"))
	op := session(t, zksync.WithLogger(slog.New(logs)))
	type open func(s *zksync.Session, name string) (path string, acquire func(context.Context) (distsync.Lease, error))
	for _, tc := range []struct {
		kind string
		open open
	}{
		{"Mutex", func(s *zksync.Session, name string) (string, func(context.Context) (distsync.Lease, error)) {
			m, _ := s.Mutex(name)
			return m.(*zksync.Mutex).Path(), func(ctx context.Context) (distsync.Lease, error) { return m.Lock(ctx) }
		}},
		{"RWMutex", func(s *zksync.Session, name string) (string, func(context.Context) (distsync.Lease, error)) {
			rw, _ := s.RWMutex(name)
			return rw.(*zksync.RWMutex).Path(), func(ctx context.Context) (distsync.Lease, error) { return rw.Lock(ctx) }
		}},
		{"Semaphore", func(s *zksync.Session, name string) (string, func(context.Context) (distsync.Lease, error)) {
			sem := semaphore(t, s, name, 1)
			return sem.Path(), func(ctx context.Context) (distsync.Lease, error) { return sem.Acquire(ctx) }
		}},
		{"Election", func(s *zksync.Session, name string) (string, func(context.Context) (distsync.Lease, error)) {
			e, _ := s.Election(name)
			return e.(*zksync.Election).Path(), func(ctx context.Context) (distsync.Lease, error) {
				l, err := e.Campaign(ctx, []byte(s.Identity()))
				if err != nil {
					return nil, err
				}
				return l, nil
			}
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			name := t.Name()
			path, acqA := tc.open(a, name)
			la, err := acqA(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer la.Release(ctx)
			_, acqB := tc.open(b, name)
			wb := start(t, op.Conn(), path, 2, acqB)
			if err := op.ForceRelease(ctx, name, la.Token()); err != nil {
				t.Fatalf("ForceRelease: %v", err)
			}
			lostBy(t, "holder", la, distsync.LossForceReleased)
			if !errors.Is(la.Err(), distsync.ErrLost) {
				t.Errorf("holder's Err %v, want ErrLost", la.Err())
			}
			lb, err := wb.wait(t)
			if err != nil {
				t.Fatalf("next waiter: %v", err)
			}
			if err := la.Release(ctx); err != nil {
				t.Errorf("Release after ForceRelease: %v", err)
			}
			attrs, ok := logs.find(slog.LevelWarn, "force release")
			switch {
			case !ok:
				t.Error("no Warn record \"force release\"")
			case attrs["name"].String() != name || attrs["token"].Uint64() != la.Token() || attrs["identity"].String() != "a":
				t.Errorf("force release logged with %v, want name %q, token %d, identity a", attrs, name, la.Token())
			}
			// The holder's Session logs its loss, with the reason.
			deadline := time.Now().Add(5 * time.Second)
			for {
				attrs, ok := alogs.find(slog.LevelWarn, "lease lost")
				if ok {
					if attrs["reason"].String() != string(distsync.LossForceReleased) || attrs["token"].Uint64() != la.Token() {
						t.Errorf("holder's loss logged with %v, want reason %s and token %d", attrs, distsync.LossForceReleased, la.Token())
					}
					break
				}
				if time.Now().After(deadline) {
					t.Error("the holder's Session logged no Warn \"lease lost\"")
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := op.ForceRelease(ctx, name, la.Token()); !errors.Is(err, distsync.ErrNotFound) {
				t.Errorf("second ForceRelease: %v, want ErrNotFound", err)
			}
			if st := inspect(t, op, name); len(st.Holders) != 1 || st.Holders[0].Token != lb.Token() || len(st.Waiters) != 0 {
				t.Errorf("after ForceRelease: %+v, want b alone holding", st)
			}
			if err := lb.Release(ctx); err != nil {
				t.Fatal(err)
			}
			waitChildren(t, op.Conn(), path, 0)
		})
		for _, r := range []*records{logs, alogs} {
			r.mu.Lock()
			r.recs = nil
			r.mu.Unlock()
		}
	}
}

// TestForceReleaseWaiter: ForceRelease of a waiter fails its acquisition
// with LossForceReleased and leaves the queue to the others.
func TestForceReleaseWaiter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
	defer cancel()
	a := session(t, zksync.WithIdentity("a"))
	b := session(t, zksync.WithIdentity("b"))
	c := session(t, zksync.WithIdentity("c"))
	op := session(t)
	name := t.Name()
	ma, _ := a.Mutex(name)
	la, err := ma.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer la.Release(ctx)
	path := ma.(*zksync.Mutex).Path()
	mb, _ := b.Mutex(name)
	wb := start(t, op.Conn(), path, 2, func(ctx context.Context) (distsync.Lease, error) { return mb.Lock(ctx) })
	mc, _ := c.Mutex(name)
	wc := start(t, op.Conn(), path, 3, func(ctx context.Context) (distsync.Lease, error) { return mc.Lock(ctx) })
	st := inspect(t, op, name)
	if len(st.Waiters) != 2 || st.Waiters[0].Identity != "b" {
		t.Fatalf("before: %+v, want waiters b and c", st)
	}
	if err := op.ForceRelease(ctx, name, st.Waiters[0].Token); err != nil {
		t.Fatal(err)
	}
	_, err = wb.wait(t)
	if !errors.Is(err, distsync.ErrLost) || distsync.LostReason(err) != distsync.LossForceReleased {
		t.Errorf("removed waiter's Lock: %v (reason %q), want ErrLost, LossForceReleased", err, distsync.LostReason(err))
	}
	if la.Err() != nil {
		t.Errorf("holder ended with %v when a waiter was removed", la.Err())
	}
	checkStatus(t, inspect(t, op, name), []holder{{"a", distsync.ModeExclusive, 1}}, []holder{{"c", distsync.ModeExclusive, 1}})
	_ = la.Release(ctx)
	lc, err := wc.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	_ = lc.Release(ctx)
	waitChildren(t, op.Conn(), path, 0)
}

// TestDeletedIsNotForceReleased: a node deleted from outside, without
// ForceRelease, ends its lease with LossDeleted; Close ends a lease with
// LossSessionEnded.
func TestDeletedIsNotForceReleased(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
	defer cancel()
	s := session(t)
	m, _ := s.Mutex(t.Name())
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := session(t).Conn().Delete(l.(*zksync.Lease).Path(), -1); err != nil {
		t.Fatal(err)
	}
	lostBy(t, "deleted", l, distsync.LossDeleted)
	c := session(t)
	m, _ = c.Mutex(t.Name())
	l, err = m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	lostBy(t, "closed", l, distsync.LossSessionEnded)
}

// TestInspectZkLock: a go-zookeeper zk.Lock on a Mutex's node shows as an
// exclusive holder without identity (zk.Lock writes none), and
// ForceRelease removes it so that the Mutex is served.
func TestInspectZkLock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), inspectTimeout)
	defer cancel()
	s := session(t)
	name := t.Name()
	m, _ := s.Mutex(name)
	path := m.(*zksync.Mutex).Path()
	zl := zk.NewLock(conn(t, 4*time.Second), path, zk.WorldACL(zk.PermAll))
	if err := zl.Lock(); err != nil {
		t.Fatal(err)
	}
	w := start(t, s.Conn(), path, 2, func(ctx context.Context) (distsync.Lease, error) { return m.Lock(ctx) })
	st := inspect(t, s, name)
	x := distsync.ModeExclusive
	checkStatus(t, st, []holder{{"", x, 1}}, []holder{{s.Identity(), x, 1}})
	if err := s.ForceRelease(ctx, name, st.Holders[0].Token); err != nil {
		t.Fatal(err)
	}
	l, err := w.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Release(ctx)
	waitChildren(t, s.Conn(), path, 0)
}
