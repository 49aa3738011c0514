package redissync_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
)

// Two Sessions with different prefixes on one server use the same name
// without seeing each other, and every key and channel they use starts
// with their prefix.
func TestPrefixesApart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin := newClient(t)
	for _, p := range []string{"app1:", "app2:"} {
		if n, err := admin.Keys(ctx, p+"*").Result(); err != nil || len(n) != 0 {
			t.Fatalf("keys %q* before the test: %v, %v", p, n, err)
		}
	}
	s1 := newSession(t, redissync.WithPrefix("app1:"))
	s2 := newSession(t, redissync.WithPrefix("app2:"))
	l1, err := mutex(t, s1, "x").TryLock(ctx)
	if err != nil {
		t.Fatalf("app1 TryLock x: %v", err)
	}
	l2, err := mutex(t, s2, "x").TryLock(ctx)
	if err != nil {
		t.Fatalf("app2 TryLock x while app1 holds its x: %v", err)
	}
	e, err := s1.Election("x")
	if err != nil {
		t.Fatal(err)
	}
	octx, stop := context.WithCancel(ctx)
	defer stop()
	changes := e.Observe(octx)
	<-changes
	for _, tc := range []struct {
		prefix string
		s      distsync.Session
	}{{"app1:", s1}, {"app2:", s2}} {
		keys, err := admin.Keys(ctx, "*"+tc.prefix[:4]+"*").Result() // also keys holding the prefix later on
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			t.Errorf("no keys of prefix %q", tc.prefix)
		}
		for _, k := range keys {
			if !strings.HasPrefix(k, tc.prefix) {
				t.Errorf("key %q does not start with %q", k, tc.prefix)
			}
		}
		if !contains(keys, tc.prefix+"{x}:h") {
			t.Errorf("keys %q, want %q among them", keys, tc.prefix+"{x}:h")
		}
		chans, err := admin.PubSubChannels(ctx, tc.prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if !contains(chans, tc.prefix+"session:"+redisq.SessionID(tc.s)) {
			t.Errorf("channels %q: no session channel of %q", chans, tc.prefix)
		}
	}
	chans, _ := admin.PubSubChannels(ctx, "*").Result()
	if !contains(chans, "app1:{x}:ch") || contains(chans, "app2:{x}:ch") {
		t.Errorf("channels %q, want app1:{x}:ch (an observer) and no app2:{x}:ch", chans)
	}
	for _, ch := range chans {
		if strings.HasPrefix(ch, "distsync:") && (strings.Contains(ch, "{x}") || strings.Contains(ch, redisq.SessionID(s1))) {
			t.Errorf("channel %q under the default prefix", ch)
		}
	}
	if n, _ := admin.Exists(ctx, "distsync:{x}:h").Result(); n != 0 {
		t.Error("a prefixed Session wrote distsync:{x}:h")
	}
	_ = l1.Release(ctx)
	_ = l2.Release(ctx)
	stop()
	for range changes {
	}
}

func TestPrefixRejected(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	for _, p := range []string{"", "a{", "}", "a*", "a?", "[a]", `a\`, "a b", "a\n", strings.Repeat("p", 257)} {
		s, err := redissync.NewSession(ctx, c, redissync.WithPrefix(p))
		if err == nil {
			s.Close()
		}
		wantErr(t, "NewSession WithPrefix("+p+")", err, distsync.ErrInvalidConfig)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Errors name the user's name as given, never an encoded key.
func TestErrorsNameTheName(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := t.Name() + "/{jobs}%nightly"
	s := newSession(t, redissync.WithPrefix("errs:"), redissync.WithTTL(300*time.Millisecond))
	m := mutex(t, s, name)
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error, suffix ...string) {
		t.Helper()
		name := name + strings.Join(suffix, "")
		if err == nil {
			t.Errorf("%s: no error", what)
			return
		}
		msg := err.Error()
		if !strings.Contains(msg, strconv.Quote(name)) || strings.Contains(msg, "%7B") || strings.Contains(msg, "errs:") {
			t.Errorf("%s: %q does not name %q alone", what, msg, name)
		}
	}
	_, err = m.TryLock(ctx)
	check("TryLock while held", err)
	cctx, ccancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = m.Lock(cctx)
	ccancel()
	check("Lock cancelled", err)
	_, err = m.Lock(cctx)
	check("Lock with an ended context", err)
	sem := semaphore(t, s, name+"/s", 2)
	p, _ := sem.Acquire(ctx)
	defer p.Release(ctx)
	_, err = s.Semaphore(ctx, name+"/s", 3)
	check("Semaphore with another limit", err, "/s")
	e, _ := s.Election(name + "/e")
	_, err = e.Leader(ctx)
	check("Leader of none", err, "/e")
	if err := redisq.DeleteMember(ctx, newClient(t), l); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	check("lost", l.Err())
	c := aclUser(t, "~other:*", "&errs:*", "+@all")
	ds, err := redissync.NewSession(ctx, c, redissync.WithPrefix("errs:"))
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	_, err = mutex(t, ds, name).TryLock(ctx)
	check("TryLock denied", err)
}
