package etcdq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/telemetry"
	"github.com/distsync/distsync/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

var etcd *testserver.Etcd

func TestMain(m *testing.M) {
	testserver.RunWithEtcd(m, func(e *testserver.Etcd) { etcd = e })
}

// queue returns the queue of name on a caller's session (a fixed
// Session), and its lease.
func queue(t *testing.T, name string) (*Queue, *epoch) {
	t.Helper()
	q := queueOn(t, etcd.Client(t), 5, name)
	e, err := q.src.epoch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return q, e
}

// queueOn returns the queue of name on a caller's session (a fixed
// Session with ttl seconds) over c, closed at cleanup.
func queueOn(t *testing.T, c *clientv3.Client, ttl int, name string) *Queue {
	t.Helper()
	s, err := concurrency.NewSession(c, concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	src, err := Fixed(s)
	if err != nil {
		t.Fatal(err)
	}
	q, err := NewQueue(src, name)
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
	q, e := queue(t, t.Name())

	control := newKey(q.prefix, e.id)
	resp, err := q.enqueue(ctx, e, control, "", q.prefix)
	if err != nil || !resp.Succeeded {
		t.Fatalf("control enqueue: succeeded=%v err=%v", resp != nil && resp.Succeeded, err)
	}
	if err := q.remove(ctx, e, control, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}

	key := newKey(q.prefix, e.id)
	q.abandon(ctx, e, key)
	resp, err = q.enqueue(ctx, e, key, "", q.prefix) // the late arrival
	if err != nil {
		t.Fatal(err)
	}
	if resp.Succeeded {
		t.Fatal("an enqueue applied after its key was abandoned created the key")
	}
	start, end := contenders(q.prefix)
	got, err := q.c.Get(ctx, start, clientv3.WithRange(end), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if got.Count != 0 {
		t.Fatalf("%d keys under %q, want 0", got.Count, q.prefix)
	}
	if _, err := q.TryAcquire(ctx, q.src.Recorder().Target(telemetry.Mutex, "", q.name), Exclusive, ""); err != nil {
		t.Fatalf("name blocked after an abandoned enqueue: %v", err)
	}
}

func TestNamesAreDisjoint(t *testing.T) {
	names := []string{"a", "a/b", "a%2Fb", "a%", "a%25", "a/", "a//b", "%", "/", "%2F"}
	seen := map[string]string{}
	for _, n := range names {
		p := Prefix(n)
		if other, ok := seen[p]; ok {
			t.Fatalf("names %q and %q share prefix %q", n, other, p)
		}
		seen[p] = n
		for _, m := range names {
			if k := newKey(Prefix(m), 0x694d); m != n && isContender(p, []byte(k)) {
				t.Fatalf("key %q of %q is a contender of %q", k, m, n)
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
	q, e := queue(t, t.Name())
	wait := q.prefix
	put := func() (string, int64) {
		t.Helper()
		key := newKey(q.prefix, e.id)
		resp, err := q.enqueue(ctx, e, key, "", wait)
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
		v, err := q.check(ctx, key, rev, wait, at)
		if err != nil {
			t.Fatalf("%s: check at %d: %v", what, at, err)
		}
		first, pred := v.pred() == "", v.pred()
		if first != wantFirst || pred != wantPred {
			t.Fatalf("%s: check at %d = first %v, pred %v; want first %v, pred %q", what, at, first, pred, wantFirst, wantPred)
		}
		cv, err := q.check(ctx, key, rev, wait, 0)
		if err != nil || (cv.pred() == "") != first {
			t.Fatalf("%s: full check = pred %v, err %v; check at a revision said first %v", what, cv.pred(), err, first)
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

	if _, err := q.check(ctx, c, revC, wait, atA+1_000_000); err == nil {
		t.Fatal("check at a future revision succeeded; the waiter must fall back to the full check")
	}
	del(c)
	if _, err := q.check(ctx, c, revC, wait, atA); !errors.Is(err, distsync.ErrLost) {
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
	const ttl = 2 * time.Second
	src, err := NewSession(ctx, etcd.Client(t), ttl, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close() })
	q, err := NewQueue(src, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	e, err := src.epoch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(q.prefix, e.id)
	start := time.Now()
	q.abandon(ctx, e, key)
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
	limit := ttl + tombstoneGrace + 3*time.Second // lease granularity and etcd's expiry loop
	for count() != 0 {
		if time.Since(start) > limit {
			t.Fatalf("tombstone still there %v after it was written (session open)", time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("tombstone gone %v after it was written", time.Since(start).Round(time.Millisecond))
	if cur, err := src.epoch(ctx); err != nil || cur != e {
		t.Fatalf("the session lease ended (%v): the tombstone's expiry proves nothing", err)
	}
}

// TestIdleCompare checks what the semaphore's limit rule relies on: etcd
// compares a prefix range that holds no key as one empty key, so a create
// revision of 0 holds exactly when no key exists under the prefix. The
// control is the same compare with a key under the prefix, and one key
// just outside it.
func TestIdleCompare(t *testing.T) {
	ctx := context.Background()
	c := etcd.Client(t)
	prefix := Prefix(t.Name())
	isIdle := func() bool {
		t.Helper()
		resp, err := c.Txn(ctx).If(idle(prefix)).Commit()
		if err != nil {
			t.Fatal(err)
		}
		return resp.Succeeded
	}
	if !isIdle() {
		t.Fatal("no key under the prefix: the compare failed")
	}
	if _, err := c.Put(ctx, LimitKey(t.Name()), "3"); err != nil { // beside the prefix
		t.Fatal(err)
	}
	if !isIdle() {
		t.Fatal("only the limit key: the compare failed")
	}
	if _, err := c.Put(ctx, prefix+"k", "1"); err != nil {
		t.Fatal(err)
	}
	if isIdle() {
		t.Fatal("a key under the prefix: the compare held")
	}
	if _, err := c.Delete(ctx, prefix, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(ctx, LimitKey(t.Name())); err != nil {
		t.Fatal(err)
	}
	if !isIdle() {
		t.Fatal("key deleted: the compare failed")
	}
}

// TestRemoveDeletesForcedMarker: removing a key that is gone already (a
// waiter cancelled as an operator force-released it) deletes the marker
// ForceRelease left for it, so nothing stays under the name.
func TestRemoveDeletesForcedMarker(t *testing.T) {
	ctx := context.Background()
	q, e := queue(t, t.Name())
	key := newKey(q.prefix, e.id)
	if _, err := q.c.Put(ctx, forcedKey(key), "operator", clientv3.WithLease(e.id)); err != nil {
		t.Fatal(err)
	}
	if err := q.remove(ctx, e, key, 1); err != nil {
		t.Fatal(err)
	}
	resp, err := q.c.Get(ctx, q.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("%d keys left under %q (%v), want 0", resp.Count, q.prefix, err)
	}
}
