package etcdsync_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/internal/etcdq"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// identified returns a Session recording identity id, with a 3 s TTL
// (etcd tells a lease's remaining TTL in whole seconds, rounded down).
func identified(t *testing.T, id string, opts ...etcdsync.Option) *etcdsync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts = append([]etcdsync.Option{etcdsync.WithTTL(3 * time.Second), etcdsync.WithIdentity(id)}, opts...)
	s, err := etcdsync.NewSession(ctx, etcd.Client(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// acquireFunc is one acquire call of one primitive value.
type acquireFunc func(context.Context) (distsync.Lease, error)

// acquired is the result of an acquire call run in the background.
type acquired struct {
	l   distsync.Lease
	err error
}

// start runs acquire in the background and waits until name has n
// contenders, so that the calls started one after another queue in order.
func start(t *testing.T, ctx context.Context, s *etcdsync.Session, name string, n int, acquire acquireFunc) <-chan acquired {
	t.Helper()
	ch := make(chan acquired, 1)
	go func() {
		l, err := acquire(ctx)
		ch <- acquired{l, err}
	}()
	waitContenders(t, s, name, n)
	return ch
}

// waitContenders waits until Inspect shows n holders and waiters of name.
func waitContenders(t *testing.T, s *etcdsync.Session, name string, n int) distsync.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := s.Inspect(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Holders)+len(st.Waiters) == n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d contenders of %q, have %+v", n, name, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// brief is a Holder without its TTL, for comparisons.
type brief struct {
	Token    uint64
	Identity string
	Mode     distsync.Mode
	Weight   int64
}

func briefs(hs []distsync.Holder) []brief {
	var out []brief
	for _, h := range hs {
		out = append(out, brief{h.Token, h.Identity, h.Mode, h.Weight})
	}
	return out
}

func TestInspect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, c, d := identified(t, "a"), identified(t, "b"), identified(t, "c"), identified(t, "d")
	type step struct {
		s       *etcdsync.Session
		acquire func(*etcdsync.Session) acquireFunc
		want    brief // Token filled in from the lease or the status
		holds   bool
	}
	mutexLock := func(name string) func(*etcdsync.Session) acquireFunc {
		return func(s *etcdsync.Session) acquireFunc {
			m, err := s.Mutex(name)
			if err != nil {
				t.Fatal(err)
			}
			return m.Lock
		}
	}
	rw := func(name string, read bool) func(*etcdsync.Session) acquireFunc {
		return func(s *etcdsync.Session) acquireFunc {
			m, err := s.RWMutex(name)
			if err != nil {
				t.Fatal(err)
			}
			if read {
				return m.RLock
			}
			return m.Lock
		}
	}
	sem := func(name string, n int64) func(*etcdsync.Session) acquireFunc {
		return func(s *etcdsync.Session) acquireFunc {
			m, err := s.Semaphore(ctx, name, 3)
			if err != nil {
				t.Fatal(err)
			}
			return func(ctx context.Context) (distsync.Lease, error) { return m.AcquireN(ctx, n) }
		}
	}
	campaign := func(name, value string) func(*etcdsync.Session) acquireFunc {
		return func(s *etcdsync.Session) acquireFunc {
			e, err := s.Election(name)
			if err != nil {
				t.Fatal(err)
			}
			return func(ctx context.Context) (distsync.Lease, error) { return e.Campaign(ctx, []byte(value)) }
		}
	}
	n := t.Name()
	for _, tc := range []struct {
		kind  string
		limit int64
		steps []step
	}{
		{"mutex", 0, []step{
			{a, mutexLock(n + "/mutex"), brief{Identity: "a", Mode: distsync.ModeExclusive, Weight: 1}, true},
			{b, mutexLock(n + "/mutex"), brief{Identity: "b", Mode: distsync.ModeExclusive, Weight: 1}, false},
			{c, mutexLock(n + "/mutex"), brief{Identity: "c", Mode: distsync.ModeExclusive, Weight: 1}, false},
		}},
		{"rwmutex", 0, []step{
			{a, rw(n+"/rwmutex", true), brief{Identity: "a", Mode: distsync.ModeRead, Weight: 1}, true},
			{b, rw(n+"/rwmutex", true), brief{Identity: "b", Mode: distsync.ModeRead, Weight: 1}, true},
			{c, rw(n+"/rwmutex", false), brief{Identity: "c", Mode: distsync.ModeWrite, Weight: 1}, false},
			{d, rw(n+"/rwmutex", true), brief{Identity: "d", Mode: distsync.ModeRead, Weight: 1}, false},
		}},
		{"semaphore", 3, []step{
			{a, sem(n+"/semaphore", 2), brief{Identity: "a", Mode: distsync.ModePermit, Weight: 2}, true},
			{b, sem(n+"/semaphore", 1), brief{Identity: "b", Mode: distsync.ModePermit, Weight: 1}, true},
			{c, sem(n+"/semaphore", 2), brief{Identity: "c", Mode: distsync.ModePermit, Weight: 2}, false},
			{d, sem(n+"/semaphore", 1), brief{Identity: "d", Mode: distsync.ModePermit, Weight: 1}, false},
		}},
		{"election", 0, []step{
			{a, campaign(n+"/election", "leader-a"), brief{Identity: "leader-a", Mode: distsync.ModeExclusive, Weight: 1}, true},
			{b, campaign(n+"/election", "cand-b"), brief{Identity: "cand-b", Mode: distsync.ModeExclusive, Weight: 1}, false},
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			name := n + "/" + tc.kind
			if st, err := a.Inspect(ctx, name); err != nil || len(st.Holders)+len(st.Waiters) != 0 || st.Limit != 0 || st.Name != name {
				t.Fatalf("Inspect of an idle name: %+v, %v", st, err)
			}
			wctx, stop := context.WithCancel(ctx)
			var wantH, wantW []brief
			var chans []<-chan acquired
			for i, s := range tc.steps {
				ch := start(t, wctx, s.s, name, i+1, s.acquire(s.s))
				chans = append(chans, ch)
				if s.holds {
					r := <-ch
					if r.err != nil {
						t.Fatal(r.err)
					}
					defer r.l.Release(ctx)
					s.want.Token = r.l.Token()
					wantH = append(wantH, s.want)
				} else {
					wantW = append(wantW, s.want)
				}
			}
			st, err := d.Inspect(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			// The waiters' tokens are their keys' revisions: increasing.
			for i := range wantW {
				if i < len(st.Waiters) {
					wantW[i].Token = st.Waiters[i].Token
				}
			}
			if got := briefs(st.Holders); !slices.Equal(got, wantH) {
				t.Errorf("holders %+v, want %+v", got, wantH)
			}
			if got := briefs(st.Waiters); !slices.Equal(got, wantW) {
				t.Errorf("waiters %+v, want %+v", got, wantW)
			}
			all := append(append([]distsync.Holder(nil), st.Holders...), st.Waiters...)
			for i, h := range all {
				if h.TTL <= 0 || h.TTL > 3*time.Second || !h.Since.IsZero() {
					t.Errorf("%+v: want a TTL in (0, 3s] and no Since", h)
				}
				if i > 0 && h.Token <= all[i-1].Token {
					t.Errorf("tokens out of queue order: %+v", all)
				}
			}
			if st.Limit != tc.limit {
				t.Errorf("limit %d, want %d", st.Limit, tc.limit)
			}
			stop()
			for i, ch := range chans {
				if !tc.steps[i].holds {
					if r := <-ch; r.err == nil {
						_ = r.l.Release(ctx)
					}
				}
			}
		})
	}
}

func TestInspectErrors(t *testing.T) {
	ctx := context.Background()
	s := newSession(t)
	if _, err := s.Inspect(ctx, ""); !errors.Is(err, distsync.ErrInvalidName) {
		t.Errorf("Inspect(\"\"): %v, want ErrInvalidName", err)
	}
	if err := s.ForceRelease(ctx, "", 1); !errors.Is(err, distsync.ErrInvalidName) {
		t.Errorf("ForceRelease(\"\"): %v, want ErrInvalidName", err)
	}
	for _, token := range []uint64{0, 1, 1 << 40, 1 << 63} {
		if err := s.ForceRelease(ctx, t.Name(), token); !errors.Is(err, distsync.ErrNotFound) {
			t.Errorf("ForceRelease(%d) of an idle name: %v, want ErrNotFound", token, err)
		}
	}
	_ = s.Close()
	if _, err := s.Inspect(ctx, t.Name()); !errors.Is(err, distsync.ErrClosed) {
		t.Errorf("Inspect after Close: %v, want ErrClosed", err)
	}
	if err := s.ForceRelease(ctx, t.Name(), 1); !errors.Is(err, distsync.ErrClosed) {
		t.Errorf("ForceRelease after Close: %v, want ErrClosed", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := newSession(t).Inspect(cctx, t.Name()); !errors.Is(err, distsync.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Inspect with an ended context: %v, want ErrUnavailable and context.Canceled", err)
	}
}

// logRecords is an slog.Handler that keeps every record.
type logRecords struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecords) WithGroup(string) slog.Handler      { return h }

// find returns the attributes of the records with msg at level.
func (h *logRecords) find(level slog.Level, msg string) []map[string]slog.Value {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]slog.Value
	for _, r := range h.records {
		if r.Level == level && r.Message == msg {
			m := map[string]slog.Value{}
			r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
			out = append(out, m)
		}
	}
	return out
}

// TestForceRelease force-releases a holder, then a waiter, of every
// kind: the holder's lease ends with LossForceReleased and the next waiter
// gets it; the waiter's acquisition fails the same way; the operator's
// Session logs both at Warn; nothing is left on etcd; the token is then
// unknown.
func TestForceRelease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logs := &logRecords{}
	op := identified(t, "operator", etcdsync.WithLogger(slog.New(logs)))
	holderLogs := &logRecords{}
	sessions := []*etcdsync.Session{
		identified(t, "a", etcdsync.WithLogger(slog.New(holderLogs))), identified(t, "b"), identified(t, "c")}
	n := t.Name()
	kinds := map[string]func(*etcdsync.Session, string) acquireFunc{
		"mutex": func(s *etcdsync.Session, name string) acquireFunc {
			m, _ := s.Mutex(name)
			return m.Lock
		},
		"rwmutex": func(s *etcdsync.Session, name string) acquireFunc {
			m, _ := s.RWMutex(name)
			return m.Lock
		},
		"semaphore": func(s *etcdsync.Session, name string) acquireFunc {
			m, err := s.Semaphore(ctx, name, 1)
			if err != nil {
				t.Fatal(err)
			}
			return m.Acquire
		},
		"election": func(s *etcdsync.Session, name string) acquireFunc {
			e, _ := s.Election(name)
			return func(ctx context.Context) (distsync.Lease, error) { return e.Campaign(ctx, []byte("v")) }
		},
	}
	for kind, open := range kinds {
		t.Run(kind, func(t *testing.T) {
			name := n + "/" + kind
			var chans []<-chan acquired
			for i, s := range sessions {
				chans = append(chans, start(t, ctx, s, name, i+1, open(s, name)))
			}
			first := <-chans[0]
			if first.err != nil {
				t.Fatal(first.err)
			}
			st := waitContenders(t, op, name, 3)
			waiter := st.Waiters[1].Token // the third in the queue

			if err := op.ForceRelease(ctx, name, first.l.Token()); err != nil {
				t.Fatal(err)
			}
			<-first.l.Done()
			if r := distsync.LostReason(first.l.Err()); r != distsync.LossForceReleased {
				t.Errorf("holder's Err %v: reason %q, want %q", first.l.Err(), r, distsync.LossForceReleased)
			}
			second := <-chans[1]
			if second.err != nil {
				t.Fatalf("next waiter: %v", second.err)
			}
			defer second.l.Release(ctx)

			if err := op.ForceRelease(ctx, name, waiter); err != nil {
				t.Fatal(err)
			}
			third := <-chans[2]
			if !errors.Is(third.err, distsync.ErrLost) || distsync.LostReason(third.err) != distsync.LossForceReleased {
				t.Errorf("force-released waiter: %v, want ErrLost with reason %q", third.err, distsync.LossForceReleased)
			}
			if err := second.l.Release(ctx); err != nil {
				t.Fatal(err)
			}

			for _, token := range []uint64{first.l.Token(), waiter} {
				if err := op.ForceRelease(ctx, name, token); !errors.Is(err, distsync.ErrNotFound) {
					t.Errorf("ForceRelease(%d) again: %v, want ErrNotFound", token, err)
				}
			}
			resp, err := etcd.Client(t).Get(ctx, name, clientv3.WithPrefix())
			if err != nil || len(resp.Kvs) != 0 {
				t.Errorf("keys left under %q: %v, %v", name, resp.Kvs, err)
			}

			var got []uint64
			for _, attrs := range logs.find(slog.LevelWarn, "force release") {
				if attrs["name"].String() == name {
					got = append(got, attrs["token"].Uint64())
					// A candidate's identity is its campaign value.
					if id := attrs["identity"].String(); id != "a" && id != "c" && id != "v" {
						t.Errorf("force release logged identity %q, want the holder's", id)
					}
				}
			}
			if want := []uint64{first.l.Token(), waiter}; !slices.Equal(got, want) {
				t.Errorf("force releases logged at Warn: tokens %v, want %v", got, want)
			}
			lost := false
			for _, attrs := range holderLogs.find(slog.LevelWarn, "lease lost") {
				if attrs["name"].String() == name && attrs["token"].Uint64() == first.l.Token() &&
					attrs["reason"].String() == string(distsync.LossForceReleased) && attrs["primitive"].String() == kind {
					lost = true
				}
			}
			if !lost {
				t.Errorf("the holder's Session logged no Warn \"lease lost\" with reason %q", distsync.LossForceReleased)
			}
		})
	}
}

// TestLossReasons: a key deleted by someone is LossDeleted; a revoked
// session lease is LossSessionEnded, although the holder sees its key
// deleted first.
func TestLossReasons(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := newSession(t)
	m, err := s.Mutex(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	admin := etcd.Client(t)
	for _, tc := range []struct {
		how  string
		end  func(l distsync.Lease) error
		want distsync.LossReason
	}{
		{"deleted", func(l distsync.Lease) error {
			_, err := admin.Delete(ctx, l.(interface{ Key() string }).Key())
			return err
		}, distsync.LossDeleted},
		{"revoked", func(distsync.Lease) error {
			id, err := etcdq.Of(s).CurrentLease(ctx)
			if err == nil {
				_, err = admin.Revoke(ctx, id)
			}
			return err
		}, distsync.LossSessionEnded},
	} {
		l, err := m.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.end(l); err != nil {
			t.Fatal(err)
		}
		<-l.Done()
		if got := distsync.LostReason(l.Err()); got != tc.want {
			t.Errorf("%s: Err %v, reason %q, want %q", tc.how, l.Err(), got, tc.want)
		}
	}
}

// TestRenewalFailureLogged: a renewal that etcd refuses (the lease was
// revoked from outside) is logged at Warn by the Session's logger.
func TestRenewalFailureLogged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	logs := &logRecords{}
	ctxS, cancelS := context.WithTimeout(ctx, 10*time.Second)
	defer cancelS()
	s, err := etcdsync.NewSession(ctxS, etcd.Client(t), etcdsync.WithTTL(time.Second), etcdsync.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, err := etcdq.Of(s).CurrentLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Client(t).Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs := logs.find(slog.LevelWarn, "renewal failed")
		if len(recs) == 1 && recs[0]["lease"].Int64() == int64(id) && recs[0]["error"].String() != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("renewal failures logged at Warn: %v, want one naming lease %x", recs, int64(id))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
