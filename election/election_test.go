package election_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/election"
	"github.com/distsync/distsync/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

var etcd *testserver.Etcd

func TestMain(m *testing.M) {
	testserver.RunWithEtcd(m, func(e *testserver.Etcd) { etcd = e })
}

func newElection(t *testing.T, name string) *election.Election {
	t.Helper()
	e, err := election.NewWithClient(context.Background(), etcd.Client(t), name, election.WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func TestNewRejectsBadInput(t *testing.T) {
	s, err := concurrency.NewSession(etcd.Client(t), concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, name := range []string{"", strings.Repeat("x", distsync.MaxNameLen+1), "bad\x00name", "bad\xffutf8"} {
		if _, err := election.New(s, name); !errors.Is(err, distsync.ErrInvalidName) {
			t.Errorf("New(%q): got %v, want ErrInvalidName", name, err)
		}
		if _, err := election.NewWithClient(context.Background(), etcd.Client(t), name); !errors.Is(err, distsync.ErrInvalidName) {
			t.Errorf("NewWithClient(%q): got %v, want ErrInvalidName", name, err)
		}
	}
	if _, err := election.New(nil, "ok"); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("New(nil session): got %v, want ErrInvalidConfig", err)
	}
	if _, err := election.NewWithClient(context.Background(), nil, "ok"); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("NewWithClient(nil client): got %v, want ErrInvalidConfig", err)
	}
	for _, ttl := range []time.Duration{0, time.Second, 2500 * time.Millisecond} {
		if _, err := election.NewWithClient(context.Background(), etcd.Client(t), "ok", election.WithTTL(ttl)); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("WithTTL(%v): got %v, want ErrInvalidConfig", ttl, err)
		}
	}
}

func TestCampaignProclaimRelease(t *testing.T) {
	ctx := context.Background()
	e := newElection(t, t.Name())
	if _, err := e.Leader(ctx); !errors.Is(err, distsync.ErrNoLeader) {
		t.Fatalf("Leader before any campaign: got %v, want ErrNoLeader", err)
	}
	l, err := e.Campaign(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Leader(ctx)
	if err != nil || string(got.Value) != "a" || got.Term != l.Token() || got.None {
		t.Fatalf("Leader = %+v, %v; want value a, term %d", got, err, l.Token())
	}
	if err := l.Proclaim(ctx, []byte("a2")); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Leader(ctx); string(got.Value) != "a2" || got.Term != l.Token() {
		t.Fatalf("Leader after Proclaim = %+v, want value a2 and the same term %d", got, l.Token())
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Proclaim(ctx, []byte("a3")); !errors.Is(err, distsync.ErrReleased) {
		t.Fatalf("Proclaim after Release: got %v, want ErrReleased", err)
	}
	if _, err := e.Leader(ctx); !errors.Is(err, distsync.ErrNoLeader) {
		t.Fatalf("Leader after Release: got %v, want ErrNoLeader", err)
	}
}

// TestProclaimAfterLoss deletes the leader key from outside: a Proclaim
// must not write (it would re-create no key, but could overwrite a later
// leader's value with a plain Put) and must say the leadership was lost.
func TestProclaimAfterLoss(t *testing.T) {
	ctx := context.Background()
	e := newElection(t, t.Name())
	lead, err := e.Campaign(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	l := lead.(*election.Leadership)
	if _, err := etcd.Client(t).Delete(ctx, l.Key()); err != nil {
		t.Fatal(err)
	}
	if err := l.Proclaim(ctx, []byte("late")); !errors.Is(err, distsync.ErrLost) {
		t.Fatalf("Proclaim after the key was deleted: got %v, want ErrLost", err)
	}
	<-l.Done()
	if !errors.Is(l.Err(), distsync.ErrLost) {
		t.Fatalf("Err: got %v, want ErrLost", l.Err())
	}
	resp, err := etcd.Client(t).Get(ctx, l.Key())
	if err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("key after a failed Proclaim: %v %v, want none", resp.Kvs, err)
	}
}

// TestCampaignRenewsOwnedSession revokes the session of an Election made by
// NewWithClient: its leadership is lost, and the next Campaign starts a new
// session and leads with a higher term, whether or not the session has
// noticed the revocation yet (it does at its next keep-alive).
func TestCampaignRenewsOwnedSession(t *testing.T) {
	for _, noticed := range []bool{false, true} {
		t.Run(fmt.Sprintf("noticed=%t", noticed), func(t *testing.T) {
			ctx := context.Background()
			e := newElection(t, t.Name())
			l1, err := e.Campaign(ctx, []byte("a"))
			if err != nil {
				t.Fatal(err)
			}
			old := e.Session()
			if _, err := etcd.Client(t).Revoke(ctx, old.Lease()); err != nil {
				t.Fatal(err)
			}
			<-l1.Done()
			if noticed {
				<-old.Done()
			}
			l2, err := e.Campaign(ctx, []byte("a"))
			if err != nil {
				t.Fatalf("Campaign after the session was revoked: %v", err)
			}
			if e.Session() == old || l2.Token() <= l1.Token() {
				t.Fatalf("new session %x (old %x), term %d after %d", e.Session().Lease(), old.Lease(), l2.Token(), l1.Token())
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			<-l2.Done()
			if _, err := e.Campaign(ctx, []byte("a")); !errors.Is(err, distsync.ErrClosed) {
				t.Fatalf("Campaign after Close: got %v, want ErrClosed", err)
			}
		})
	}
}

// TestConcurrentCampaignsRenewOnce: candidates campaigning at once through
// an Election whose session was revoked share one new session.
func TestConcurrentCampaignsRenewOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newElection(t, t.Name())
	if _, err := etcd.Client(t).Revoke(ctx, e.Session().Lease()); err != nil {
		t.Fatal(err)
	}
	const n = 4
	leases := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			l, err := e.Campaign(ctx, []byte("a"))
			if err != nil {
				t.Error(err)
				return
			}
			key := l.(*election.Leadership).Key()
			leases <- key[:strings.LastIndexByte(key, '_')]
			_ = l.Release(ctx)
		})
	}
	wg.Wait()
	close(leases)
	seen := map[string]bool{}
	for l := range leases {
		seen[l] = true
	}
	if len(seen) != 1 {
		t.Fatalf("candidates used %d sessions, want one new session: %v", len(seen), seen)
	}
}

// TestCampaignOnEndedCallerSession: with a session of the caller's, an
// ended session is reported, not replaced.
func TestCampaignOnEndedCallerSession(t *testing.T) {
	s, err := concurrency.NewSession(etcd.Client(t), concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	e, err := election.New(s, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Campaign(context.Background(), []byte("a")); !errors.Is(err, distsync.ErrClosed) {
		t.Fatalf("Campaign on an ended session: got %v, want ErrClosed", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestObserveEndsWithContext checks that the channel closes when ctx ends,
// also while nobody reads it (the goroutine-leak check of TestMain catches
// a goroutine left behind).
func TestObserveEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	e := newElection(t, t.Name())
	ch := e.Observe(ctx)
	if first := <-ch; !first.None {
		t.Fatalf("first observation of an empty election: %+v, want None", first)
	}
	l, err := e.Campaign(context.Background(), []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.Background())
	time.Sleep(50 * time.Millisecond) // the observer blocks sending the change
	cancel()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("Observe channel still open 5s after ctx ended")
		}
	}
}

// TestObserveEndsWithClient closes the client under an observer.
func TestObserveEndsWithClient(t *testing.T) {
	c, err := etcd.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	e, err := election.NewWithClient(context.Background(), c, t.Name(), election.WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ch := e.Observe(context.Background())
	<-ch
	_ = e.Close()
	c.Close()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("observation after the client closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Observe channel still open 5s after the client closed")
	}
}

// TestLeaderSeesConcurrencyElection shows the key layout is etcd's: a
// candidate of concurrency.Election (`etcdctl elect`) is seen as leader, and
// ours waits for it.
func TestLeaderSeesConcurrencyElection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "interop-election"
	s, err := concurrency.NewSession(etcd.Client(t), concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	theirs := concurrency.NewElection(s, name)
	if err := theirs.Campaign(ctx, "theirs"); err != nil {
		t.Fatal(err)
	}
	ours := newElection(t, name)
	if got, err := ours.Leader(ctx); err != nil || string(got.Value) != "theirs" {
		t.Fatalf("Leader = %+v, %v; want theirs", got, err)
	}
	got := make(chan distsync.Leadership, 1)
	go func() {
		l, err := ours.Campaign(ctx, []byte("ours"))
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	select {
	case <-got:
		t.Fatal("our Campaign returned while concurrency.Election leads")
	case <-time.After(200 * time.Millisecond):
	}
	if resp, err := theirs.Leader(ctx); err != nil || string(resp.Kvs[0].Value) != "theirs" {
		t.Fatalf("concurrency.Election.Leader = %v, %v", resp, err)
	}
	if err := theirs.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	l := <-got
	if l == nil {
		return
	}
	if resp, err := theirs.Leader(ctx); err != nil || string(resp.Kvs[0].Value) != "ours" {
		t.Fatalf("concurrency.Election.Leader after handover = %v, %v; want ours", resp, err)
	}
	_ = l.Release(ctx)
}

// TestConditionalWrite: Leadership.IsOwner guards a write by leadership.
func TestConditionalWrite(t *testing.T) {
	ctx := context.Background()
	c := etcd.Client(t)
	e := newElection(t, t.Name())
	lead, err := e.Campaign(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	l := lead.(*election.Leadership)
	write := func() bool {
		resp, err := c.Txn(ctx).If(l.IsOwner()).Then(clientv3.OpPut(t.Name()+"-data", "x")).Commit()
		if err != nil {
			t.Fatal(err)
		}
		return resp.Succeeded
	}
	if !write() {
		t.Fatal("write while leading failed")
	}
	_ = l.Release(ctx)
	if write() {
		t.Fatal("write after resigning succeeded")
	}
	if l.Revision() != int64(l.Token()) {
		t.Fatalf("Revision %d != Token %d", l.Revision(), l.Token())
	}
}
