package redissync_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	goredis "github.com/redis/go-redis/v9"
)

// deniedFast fails t unless f fails with ErrDenied alone, within a second
// (no retry).
func deniedFast(t *testing.T, what string, f func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	wantErr(t, what, err, distsync.ErrDenied)
	if took := time.Since(start); took > time.Second {
		t.Errorf("%s took %v: a refusal was retried", what, took)
	}
}

// A user that Redis refuses gets ErrDenied at once: at NewSession when it
// may not subscribe or run scripts, or has a wrong password.
func TestDeniedAtOpen(t *testing.T) {
	for _, tc := range []struct {
		what  string
		rules []string
	}{
		{"no distsync keys or channels", []string{"~other:*", "&other:*", "+@all"}},
		{"no scripting", []string{"~*", "&*", "+@all", "-@scripting"}},
		{"no evalsha", []string{"~*", "&*", "+@all", "-evalsha"}},
	} {
		c := aclUser(t, tc.rules...)
		deniedFast(t, "NewSession, "+tc.what, func(ctx context.Context) error {
			s, err := redissync.NewSession(ctx, c)
			if err == nil {
				s.Close()
			}
			return err
		})
	}
	aclUser(t, "~*", "&*", "+@all") // exists, with password "pw"
	bad := goredis.NewClient(&goredis.Options{Addr: server.Addr(), Username: "nobody-distsync", Password: "wrong"})
	defer bad.Close()
	deniedFast(t, "NewSession, wrong password", func(ctx context.Context) error {
		_, err := redissync.NewSession(ctx, bad)
		return err
	})
	deniedFast(t, "Dial, wrong password", func(ctx context.Context) error {
		_, err := redissync.Dial(ctx, &goredis.UniversalOptions{Addrs: []string{server.Addr()}, Username: "nobody-distsync", Password: "wrong"})
		return err
	})
}

// A user that may open a Session but not touch distsync's keys gets
// ErrDenied at once from every acquisition, and Run returns it without
// retrying.
func TestDeniedCalls(t *testing.T) {
	c := aclUser(t, "~other:*", "&distsync:*", "+@all")
	ctx := context.Background()
	s, err := redissync.NewSession(ctx, c, redissync.WithTTL(time.Second))
	if err != nil {
		t.Fatalf("NewSession of a user with the channels: %v", err)
	}
	defer s.Close()
	name := t.Name()
	m, _ := s.Mutex(name)
	rw, _ := s.RWMutex(name)
	e, _ := s.Election(name)
	for what, f := range map[string]func(ctx context.Context) (distsync.Lease, error){
		"Lock": m.Lock, "TryLock": m.TryLock, "RWMutex.Lock": rw.Lock, "RLock": rw.RLock, "TryRLock": rw.TryRLock,
		"Campaign": func(ctx context.Context) (distsync.Lease, error) { return e.Campaign(ctx, []byte("v")) },
	} {
		deniedFast(t, what, func(ctx context.Context) error {
			l, err := f(ctx)
			if l != nil {
				_ = l.Release(ctx)
			}
			return err
		})
	}
	deniedFast(t, "Semaphore", func(ctx context.Context) error {
		_, err := s.Semaphore(ctx, name, 2)
		return err
	})
	deniedFast(t, "Leader", func(ctx context.Context) error {
		_, err := e.Leader(ctx)
		return err
	})
	deniedFast(t, "Run", func(ctx context.Context) error {
		return distsync.Run(ctx, e, []byte("v"), distsync.Callbacks{
			OnStartedLeading: func(context.Context, distsync.Leadership) { t.Error("denied user leads") },
		})
	})
	// Observe closes its channel instead of retrying.
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for range e.Observe(octx) {
		t.Error("denied observer got a leader")
	}
	if octx.Err() != nil {
		t.Error("Observe retried a refusal until its context ended")
	}
}

// When Redis starts refusing a Session that worked (its ACL changed), a
// held lease ends lost at its next renewal instead of retrying, and a
// waiter whose pub/sub connection is refused fails with ErrDenied.
func TestDeniedLater(t *testing.T) {
	const ttl = 600 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := aclUser(t, "~*", "&*", "+@all")
	user := c.Options().Username
	admin := newClient(t)
	s, err := redissync.NewSession(ctx, c, redissync.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	name := t.Name()
	held, err := mutex(t, s, name+"/held").Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blocker, err := mutex(t, newSession(t), name+"/blocked").Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Release(ctx)
	waiting := make(chan error, 1)
	go func() {
		l, err := mutex(t, s, name+"/blocked").Lock(ctx)
		if l != nil {
			_ = l.Release(ctx)
		}
		waiting <- err
	}()
	waitMembers(t, name+"/blocked", 2)

	// Take the keys and channels away, and cut the user's connections so
	// that the pub/sub connection resubscribes.
	changed := time.Now()
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "resetkeys", "resetchannels", "~other:*", "&other:*").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "CLIENT", "KILL", "USER", user).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waiting:
		wantErr(t, "waiting Lock after the ACL change", err, distsync.ErrDenied)
		t.Logf("the waiter failed %v after the ACL change", time.Since(changed))
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter still waits 5s after its user lost the channels")
	}
	select {
	case <-held.Done():
		wantErr(t, "held lease after the ACL change", held.Err(), distsync.ErrLost)
		if !errors.Is(held.Err(), distsync.ErrLost) {
			break
		}
		if took := time.Since(changed); took > ttl/3+200*time.Millisecond {
			t.Errorf("the lease ended %v after the ACL change, want at its next renewal (within %v)", took, ttl/3)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lease still held 5s after its user lost the keys")
	}
}

// aclCommands are the commands the package documentation lists for a
// distsync user.
var aclCommands = []string{
	"+evalsha", "+eval", "+script|load", "+subscribe", "+unsubscribe", "+ping",
	"+time", "+get", "+set", "+del", "+exists", "+zadd", "+zrem", "+zcard", "+zrange", "+zrangebyscore",
	"+zscore", "+hset", "+hget", "+hmget", "+hdel", "+xadd", "+xrange", "+xrevrange", "+publish"}

// A user with exactly the commands, keys and channels that the package
// documentation lists can use every primitive.
func TestDocumentedACL(t *testing.T) {
	c := aclUser(t, append([]string{"~distsync:*", "&distsync:*"}, aclCommands...)...)
	usesEveryPrimitive(t, c)
}

// A user confined to the keys and channels of prefix "app:" uses every
// primitive with WithPrefix("app:"), and is denied at once without it.
func TestDocumentedACLPrefix(t *testing.T) {
	c := aclUser(t, append([]string{"~app:*", "&app:*"}, aclCommands...)...)
	usesEveryPrimitive(t, c, redissync.WithPrefix("app:"))
	deniedFast(t, "NewSession with the default prefix", func(ctx context.Context) error {
		s, err := redissync.NewSession(ctx, c)
		if err == nil {
			s.Close()
		}
		return err
	})
}

// usesEveryPrimitive fails t unless a Session on c, opened with opts,
// can use every primitive: Mutex (also waiting), RWMutex (read and
// write), Semaphore (AcquireN, SetLimit) and Election (Campaign, Leader,
// Observe, Proclaim), and Inspect and ForceRelease.
func usesEveryPrimitive(t *testing.T, c *goredis.Client, opts ...redissync.Option) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redissync.NewSession(ctx, c, append([]redissync.Option{redissync.WithTTL(300 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	name := t.Name()
	m, _ := s.Mutex(name + "/m")
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	waited := make(chan error, 1)
	go func() {
		l, err := m.Lock(ctx)
		if err == nil {
			err = l.Release(ctx)
		}
		waited <- err
	}()
	time.Sleep(400 * time.Millisecond) // renewals and re-checks
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("waiting Lock: %v", err)
	}
	rw, _ := s.RWMutex(name + "/rw")
	r1, err := rw.RLock(ctx)
	if err != nil {
		t.Fatalf("RLock: %v", err)
	}
	r2, err := rw.TryRLock(ctx)
	if err != nil {
		t.Fatalf("TryRLock beside a reader: %v", err)
	}
	wrote := make(chan error, 1)
	go func() {
		w, err := rw.Lock(ctx)
		if err == nil {
			err = w.Release(ctx)
		}
		wrote <- err
	}()
	time.Sleep(100 * time.Millisecond)
	_ = r1.Release(ctx)
	_ = r2.Release(ctx)
	if err := <-wrote; err != nil {
		t.Fatalf("RWMutex.Lock after the readers: %v", err)
	}
	sem, err := s.Semaphore(ctx, name+"/s", 2)
	if err != nil {
		t.Fatalf("Semaphore: %v", err)
	}
	p, err := sem.AcquireN(ctx, 2)
	if err != nil {
		t.Fatalf("AcquireN: %v", err)
	}
	if err := sem.SetLimit(ctx, 3); err != nil {
		t.Fatalf("SetLimit: %v", err)
	}
	p1, err := sem.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire after SetLimit: %v", err)
	}
	_ = p.Release(ctx)
	_ = p1.Release(ctx)
	e, _ := s.Election(name + "/e")
	if _, err := e.Leader(ctx); !errors.Is(err, distsync.ErrNoLeader) {
		t.Fatalf("Leader before any: %v, want ErrNoLeader", err)
	}
	octx, stop := context.WithCancel(ctx)
	changes := e.Observe(octx)
	if l := <-changes; !l.None {
		t.Fatalf("first observation %+v, want none", l)
	}
	ld, err := e.Campaign(ctx, []byte("v"))
	if err != nil {
		t.Fatalf("Campaign: %v", err)
	}
	if l := <-changes; string(l.Value) != "v" {
		t.Fatalf("observed %+v, want the leader v", l)
	}
	if l, err := e.Leader(ctx); err != nil || string(l.Value) != "v" {
		t.Fatalf("Leader: %+v, %v; want v", l, err)
	}
	if err := ld.Proclaim(ctx, []byte("w")); err != nil {
		t.Fatalf("Proclaim: %v", err)
	}
	if st, err := s.Inspect(ctx, name+"/e"); err != nil || len(st.Holders) != 1 {
		t.Fatalf("Inspect: %+v, %v; want the leader", st, err)
	}
	if err := s.ForceRelease(ctx, name+"/e", ld.Token()); err != nil {
		t.Fatalf("ForceRelease: %v", err)
	}
	<-ld.Done() // its renewal found the record ForceRelease left
	if got := distsync.LostReason(ld.Err()); got != distsync.LossForceReleased {
		t.Fatalf("leadership ended with %v, want reason %q", ld.Err(), distsync.LossForceReleased)
	}
	_ = ld.Release(ctx)
	stop()
	for range changes {
	}
}
