package etcdq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

var etcd *testserver.Etcd

func TestMain(m *testing.M) {
	testserver.RunWithEtcd(m, func(e *testserver.Etcd) { etcd = e })
}

func queue(t *testing.T, name string) *Queue {
	t.Helper()
	s, err := concurrency.NewSession(etcd.Client(t), concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	q, err := New(s, name)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestAbandonedEnqueueNeverLands replays the case where a client gives up
// on an enqueue Txn whose outcome it does not know, removes the key, and
// the Txn is applied afterwards (it was still in flight): the tombstone
// must make the late Txn write nothing, or the orphaned key would block the
// name for the life of the session. The control shows the replayed Txn does
// write the key when nothing was abandoned.
func TestAbandonedEnqueueNeverLands(t *testing.T) {
	ctx := context.Background()
	q := queue(t, t.Name())

	control := newKey(q.prefix, q.s.Lease())
	resp, err := q.enqueue(ctx, control, "", q.prefix)
	if err != nil || !resp.Succeeded {
		t.Fatalf("control enqueue: succeeded=%v err=%v", resp != nil && resp.Succeeded, err)
	}
	if err := q.remove(ctx, control, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}

	key := newKey(q.prefix, q.s.Lease())
	q.abandon(ctx, key)
	resp, err = q.enqueue(ctx, key, "", q.prefix) // the late arrival
	if err != nil {
		t.Fatal(err)
	}
	if resp.Succeeded {
		t.Fatal("an enqueue applied after its key was abandoned created the key")
	}
	got, err := q.c.Get(ctx, q.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if got.Count != 0 {
		t.Fatalf("%d keys under %q, want 0", got.Count, q.prefix)
	}
	if _, err := q.TryAcquire(ctx, Exclusive, ""); err != nil {
		t.Fatalf("name blocked after an abandoned enqueue: %v", err)
	}
}

func TestPrefixIsInjective(t *testing.T) {
	names := []string{"a", "a/b", "a%2Fb", "a%", "a%25", "a/", "a//b", "%", "/", "%2F"}
	seen := map[string]string{}
	for _, n := range names {
		p := Prefix(n)
		if other, ok := seen[p]; ok {
			t.Fatalf("names %q and %q share prefix %q", n, other, p)
		}
		seen[p] = n
		for _, m := range names {
			if m != n && len(Prefix(m)) > len(p) && Prefix(m)[:len(p)] == p {
				t.Fatalf("prefix %q of %q contains prefix %q of %q", p, n, Prefix(m), m)
			}
		}
	}
	if got := Prefix("jobs"); got != "jobs/" {
		t.Fatalf("Prefix(%q) = %q, want etcd's concurrency.Mutex layout %q", "jobs", got, "jobs/")
	}
}

// TestCheckAt checks the handoff's read at the revision of the
// predecessor's deletion against the states it must tell apart: first in
// line, still behind an older key, its own key gone, and a revision the
// member cannot answer for (the waiter then falls back to the full check).
// The control is the full check at the current revision, which must agree.
func TestCheckAt(t *testing.T) {
	ctx := context.Background()
	q := queue(t, t.Name())
	wait := q.prefix
	put := func() (string, int64) {
		t.Helper()
		key := newKey(q.prefix, q.s.Lease())
		resp, err := q.enqueue(ctx, key, "", wait)
		if err != nil || !resp.Succeeded {
			t.Fatalf("enqueue: %v", err)
		}
		return key, resp.Header.Revision
	}
	del := func(key string) int64 {
		t.Helper()
		resp, err := q.c.Delete(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Header.Revision
	}
	agree := func(what string, key string, rev, at int64, wantFirst bool, wantPred string) {
		t.Helper()
		first, pred, err := q.check(ctx, key, rev, wait, at)
		if err != nil {
			t.Fatalf("%s: check at %d: %v", what, at, err)
		}
		if first != wantFirst || (pred == nil) != (wantPred == "") || (pred != nil && string(pred.Key) != wantPred) {
			t.Fatalf("%s: check at %d = first %v, pred %v; want first %v, pred %q", what, at, first, pred, wantFirst, wantPred)
		}
		cf, cp, err := q.check(ctx, key, rev, wait, 0)
		if err != nil || cf != first || (cp == nil) != (pred == nil) {
			t.Fatalf("%s: full check = first %v, pred %v, err %v; check at a revision said first %v", what, cf, cp, err, first)
		}
	}

	a, _ := put()
	b, _ := put()
	c, revC := put()
	atB := del(b) // a waiter ahead of c cancelled: a still holds
	agree("behind a holder", c, revC, atB, false, a)
	atA := del(a)
	agree("first in line", c, revC, atA, true, "")

	// A later key does not change the answer for an earlier revision.
	put()
	agree("a newer waiter behind", c, revC, atA, true, "")

	if _, _, err := q.check(ctx, c, revC, wait, atA+1_000_000); err == nil {
		t.Fatal("check at a future revision succeeded; the waiter must fall back to the full check")
	}
	del(c)
	if _, _, err := q.check(ctx, c, revC, wait, atA); !errors.Is(err, distsync.ErrLost) {
		t.Fatalf("check at a revision after the waiter's own key was deleted: %v, want ErrLost", err)
	}
}

// TestAbandonedTombstoneExpires checks that a tombstone does not outlive
// its purpose: a session kept for hours, with waits cancelled often, must
// not pile them up. It lives for the session's TTL plus tombstoneGrace,
// then etcd deletes it; the session stays open throughout. The first read
// is the control: the tombstone is there to be seen.
func TestAbandonedTombstoneExpires(t *testing.T) {
	ctx := context.Background()
	s, err := NewSession(ctx, etcd.Client(t), MinTTL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	q, err := New(s, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(q.prefix, q.s.Lease())
	start := time.Now()
	q.abandon(ctx, key)
	count := func() int64 {
		got, err := q.c.Get(ctx, tombstone(key), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return got.Count
	}
	if n := count(); n != 1 {
		t.Fatalf("control: %d tombstones right after abandon, want 1", n)
	}
	limit := MinTTL + tombstoneGrace + 3*time.Second // lease granularity and etcd's expiry loop
	for count() != 0 {
		if time.Since(start) > limit {
			t.Fatalf("tombstone still there %v after it was written (session open)", time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("tombstone gone %v after it was written", time.Since(start).Round(time.Millisecond))
	select {
	case <-s.Done():
		t.Fatal("the session ended: the tombstone's expiry proves nothing")
	default:
	}
}
