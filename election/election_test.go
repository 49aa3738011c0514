package election_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/election"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

var etcd *testserver.Etcd

func TestMain(m *testing.M) {
	testserver.RunWithEtcd(m, func(e *testserver.Etcd) { etcd = e })
}

// newSession returns a Session with a 5 s TTL on a client of its own,
// closed at cleanup.
func newSession(t *testing.T) *etcdsync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdsync.NewSession(ctx, etcd.Client(t), etcdsync.WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func open(t *testing.T, s *etcdsync.Session, name string) distsync.Election {
	t.Helper()
	e, err := s.Election(name)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newElection(t *testing.T, name string) distsync.Election {
	t.Helper()
	return open(t, newSession(t), name)
}

func TestNewRejectsBadInput(t *testing.T) {
	s, err := concurrency.NewSession(etcd.Client(t), concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ours := newSession(t)
	for _, name := range []string{"", strings.Repeat("x", distsync.MaxNameLen+1), "bad\x00name", "bad\xffutf8"} {
		if _, err := election.New(s, name); !errors.Is(err, distsync.ErrInvalidName) {
			t.Errorf("New(%q): got %v, want ErrInvalidName", name, err)
		}
		if _, err := ours.Election(name); !errors.Is(err, distsync.ErrInvalidName) {
			t.Errorf("Session.Election(%q): got %v, want ErrInvalidName", name, err)
		}
	}
	if _, err := election.New(nil, "ok"); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("New(nil session): got %v, want ErrInvalidConfig", err)
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

// TestCampaignAfterRevoke revokes the lease of a Session: its leadership
// is lost, and the next Campaign through the same Election leads under a
// new lease with a higher term, whether or not the Session has noticed the
// revocation yet (it does at its next renewal). After Close, Campaign
// fails with ErrClosed.
func TestCampaignAfterRevoke(t *testing.T) {
	for _, noticed := range []bool{false, true} {
		t.Run(fmt.Sprintf("noticed=%t", noticed), func(t *testing.T) {
			ctx := context.Background()
			s := newSession(t)
			e := open(t, s, t.Name())
			l1, err := e.Campaign(ctx, []byte("a"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := etcd.Client(t).Revoke(ctx, leaseOf(t, l1)); err != nil {
				t.Fatal(err)
			}
			<-l1.Done()
			if noticed {
				time.Sleep(2 * time.Second) // past a renewal (every TTL/3)
			}
			l2, err := e.Campaign(ctx, []byte("a"))
			if err != nil {
				t.Fatalf("Campaign after the lease was revoked: %v", err)
			}
			if leaseOf(t, l2) == leaseOf(t, l1) || l2.Token() <= l1.Token() {
				t.Fatalf("new lease %x (old %x), term %d after %d", leaseOf(t, l2), leaseOf(t, l1), l2.Token(), l1.Token())
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			<-l2.Done()
			if _, err := e.Campaign(ctx, []byte("a")); !errors.Is(err, distsync.ErrClosed) {
				t.Fatalf("Campaign after Close: got %v, want ErrClosed", err)
			}
		})
	}
}

// leaseOf returns the etcd lease of l's key: its name starts with the
// lease ID in hex, as in etcd's concurrency.Election.
func leaseOf(t *testing.T, l distsync.Leadership) clientv3.LeaseID {
	t.Helper()
	key := l.(*election.Leadership).Key()
	id, err := strconv.ParseInt(key[strings.LastIndexByte(key, '/')+1:strings.LastIndexByte(key, '_')], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return clientv3.LeaseID(id)
}

// TestConcurrentCampaignsRenewOnce: candidates campaigning at once through
// a Session whose lease was revoked share one new lease.
func TestConcurrentCampaignsRenewOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newElection(t, t.Name())
	l, err := e.Campaign(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Client(t).Revoke(ctx, leaseOf(t, l)); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	const n = 4
	leases := make(chan clientv3.LeaseID, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			l, err := e.Campaign(ctx, []byte("a"))
			if err != nil {
				t.Error(err)
				return
			}
			leases <- leaseOf(t, l)
			_ = l.Release(ctx)
		})
	}
	wg.Wait()
	close(leases)
	seen := map[clientv3.LeaseID]bool{}
	for l := range leases {
		seen[l] = true
	}
	if len(seen) != 1 {
		t.Fatalf("candidates used %d leases, want one new lease: %v", len(seen), seen)
	}
}

// TestObserveAcrossLeaseChange: an observer needs no lease, and follows
// the election while the Session's lease is revoked and replaced.
func TestObserveAcrossLeaseChange(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newElection(t, t.Name())
	changes := e.Observe(ctx)
	if first := <-changes; !first.None {
		t.Fatalf("first observation: %+v, want None", first)
	}
	l1, err := e.Campaign(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if got := <-changes; got.Term != l1.Token() {
		t.Fatalf("observed %+v, want term %d", got, l1.Token())
	}
	if _, err := etcd.Client(t).Revoke(ctx, leaseOf(t, l1)); err != nil {
		t.Fatal(err)
	}
	if got := <-changes; !got.None {
		t.Fatalf("observed %+v after the revoke, want None", got)
	}
	l2, err := e.Campaign(ctx, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if got := <-changes; got.Term != l2.Token() || string(got.Value) != "b" {
		t.Fatalf("observed %+v, want term %d value b", got, l2.Token())
	}
	if got, err := e.Leader(ctx); err != nil || got.Term != l2.Token() {
		t.Fatalf("Leader = %+v, %v; want term %d", got, err, l2.Token())
	}
	_ = l2.Release(ctx)
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

// TestObserveEndsWithClose: Session.Close ends its observers; with a
// session of the caller's, closing the client does.
func TestObserveEndsWithClose(t *testing.T) {
	s := newSession(t)
	ch := open(t, s, t.Name()).Observe(context.Background())
	<-ch
	_ = s.Close()
	closedWithin(t, ch)

	c, err := etcd.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := concurrency.NewSession(c, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	e, err := election.New(cs, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	ch = e.Observe(context.Background())
	<-ch
	_ = cs.Close()
	c.Close()
	closedWithin(t, ch)
}

func closedWithin(t *testing.T, ch <-chan distsync.Leader) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("observation after the close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Observe channel still open 5s after the close")
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
