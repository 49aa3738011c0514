package redissync_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
	goredis "github.com/redis/go-redis/v9"
)

// identities reads, with plain commands as an operator would, the
// identity of every holder (ZRANGE of the holders) and of every member
// that has one (HGETALL of the tokens hash).
func identities(t *testing.T, c *goredis.Client, k redisq.Keys) (holders []string, all map[string]string) {
	t.Helper()
	ctx := context.Background()
	members, err := c.ZRange(ctx, k.Holders, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.HGetAll(ctx, k.Tokens).Result()
	if err != nil {
		t.Fatal(err)
	}
	all = map[string]string{}
	for f, v := range h {
		if m, ok := strings.CutPrefix(f, "i"); ok {
			all[m] = v
		}
	}
	for _, m := range members {
		holders = append(holders, all[m])
	}
	return holders, all
}

// Every acquisition records its Session's identity in the tokens hash,
// field "i" + member, for holders and waiters; it goes away with the
// member: release, expiry, deletion from outside.
func TestIdentityRecorded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newClient(t)
	const weird = "web-1|a:b c {x} %7B ü"
	s1 := newSession(t, redissync.WithIdentity(weird), redissync.WithTTL(500*time.Millisecond))
	s2 := newSession(t, redissync.WithTTL(500*time.Millisecond)) // the default identity
	name := t.Name() + "/m"
	k := redisq.KeysFor(name)

	l1, err := mutex(t, s1, name).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := identities(t, c, k); len(got) != 1 || got[0] != weird {
		t.Fatalf("holder identities %q, want [%q]", got, weird)
	}
	waited := make(chan distsync.Lease, 1)
	go func() {
		l, err := mutex(t, s2, name).Lock(ctx)
		if err != nil {
			t.Error(err)
		}
		waited <- l
	}()
	waitFor(t, "the waiter's identity", func() bool {
		_, all := identities(t, c, k)
		return len(all) == 2
	})
	if _, all := identities(t, c, k); !hasValue(all, distsync.DefaultIdentity()) {
		t.Errorf("identities %q, want the waiter's %q among them", all, distsync.DefaultIdentity())
	}
	_ = l1.Release(ctx)
	l2 := <-waited
	if l2 == nil {
		return
	}
	if got, all := identities(t, c, k); len(got) != 1 || got[0] != distsync.DefaultIdentity() || len(all) != 1 {
		t.Fatalf("after the release: holder identities %q (all %q), want [%q] alone", got, all, distsync.DefaultIdentity())
	}
	_ = l2.Release(ctx)
	if _, all := identities(t, c, k); len(all) != 0 {
		t.Fatalf("identities %q left after the last release", all)
	}

	// Expiry: reclaimed by the next script on the name.
	l3, err := mutex(t, s1, name).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := redisq.Expire(ctx, s1); err != nil {
		t.Fatal(err)
	}
	<-l3.Done()
	if _, all := identities(t, c, k); len(all) != 0 {
		t.Errorf("identities %q left after an expiry", all)
	}

	// Deleted from outside (ZREM, HDEL of the token only): the holder's
	// next renewal forgets its identity.
	l4, err := mutex(t, s2, name).Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := redisq.DeleteMember(ctx, c, l4); err != nil {
		t.Fatal(err)
	}
	<-l4.Done()
	if !strings.Contains(l4.Err().Error(), `"`+name+`"`) || strings.Contains(l4.Err().Error(), "{") {
		t.Errorf("loss %q does not name %q", l4.Err(), name)
	}
	if _, all := identities(t, c, k); len(all) != 0 {
		t.Errorf("identities %q left after a deletion from outside", all)
	}
}

// Every kind of acquisition records the identity; an election's value
// stays what the candidate campaigns with.
func TestIdentityEveryKind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newClient(t)
	const id = "worker:7"
	s := newSession(t, redissync.WithIdentity(id), redissync.WithPrefix("ident:"))
	base := t.Name()
	var leases []distsync.Lease
	check := func(what, name string, l distsync.Lease, err error, holders int) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		leases = append(leases, l)
		got, _ := identities(t, c, redisq.KeysWith("ident:", name))
		if len(got) != holders {
			t.Fatalf("%s: holder identities %q, want %d", what, got, holders)
		}
		for _, g := range got {
			if g != id {
				t.Errorf("%s: holder identity %q, want %q", what, g, id)
			}
		}
	}
	rw, _ := s.RWMutex(base + "/rw")
	l, err := rw.RLock(ctx)
	check("RLock", base+"/rw", l, err, 1)
	l, err = rw.RLock(ctx)
	check("second RLock", base+"/rw", l, err, 2)
	sem := semaphore(t, s, base+"/sem", 3)
	l, err = sem.AcquireN(ctx, 2)
	check("AcquireN", base+"/sem", l, err, 1)
	e, _ := s.Election(base + "/e")
	l, err = e.Campaign(ctx, []byte("value"))
	check("Campaign", base+"/e", l, err, 1)
	if ld, err := e.Leader(ctx); err != nil || string(ld.Value) != "value" {
		t.Errorf("Leader: %+v, %v; want the value %q", ld, err, "value")
	}
	for _, l := range leases {
		_ = l.Release(ctx)
	}
	for _, n := range []string{base + "/rw", base + "/sem", base + "/e"} {
		if _, all := identities(t, c, redisq.KeysWith("ident:", n)); len(all) != 0 {
			t.Errorf("%s: identities %q left after release", n, all)
		}
	}
}

func TestIdentityRejected(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	for _, id := range []string{"", "a\nb", "\x00", strings.Repeat("i", distsync.MaxIdentityLen+1)} {
		s, err := redissync.NewSession(ctx, c, redissync.WithIdentity(id))
		if err == nil {
			s.Close()
		}
		wantErr(t, "NewSession WithIdentity("+id+")", err, distsync.ErrInvalidConfig)
	}
}

func hasValue(m map[string]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
