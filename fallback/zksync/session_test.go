package zksync_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/distsync/distsync/internal/testserver"
	"github.com/go-zookeeper/zk"
)

// conn returns a plain go-zookeeper connection with a session, closed at
// cleanup.
func conn(t *testing.T, timeout time.Duration) *zk.Conn {
	t.Helper()
	c, events, err := zk.Connect(server.Servers(), timeout, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				go func() {
					for range events {
					}
				}()
				return c
			}
		case <-deadline:
			t.Fatal("no session within 20s")
		}
	}
}

// TestTTLGrantedOrRefused: Dial fails with ErrInvalidConfig, naming both
// values, when the server grants another session timeout than WithTTL's.
func TestTTLGrantedOrRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := zksync.Dial(ctx, server.Servers(), zksync.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if s.TTL() != time.Second {
		t.Errorf("TTL() = %v, want 1s", s.TTL())
	}
	s.Close()
	for _, ttl := range []time.Duration{testserver.ZooKeeperMinSession / 2, 90 * time.Second} {
		_, err := zksync.Dial(ctx, server.Servers(), zksync.WithTTL(ttl))
		if !errors.Is(err, distsync.ErrInvalidConfig) || !strings.Contains(err.Error(), ttl.String()) || !strings.Contains(err.Error(), "granted") {
			t.Errorf("Dial(WithTTL(%v)) on a server that clamps it: %v, want ErrInvalidConfig naming both", ttl, err)
		}
	}
}

// TestNewSession: a Session on the caller's connection works, checks
// WithTTL against the connection's timeout, refuses Dial-only options, and
// Close deletes its nodes but leaves the connection open.
func TestNewSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := conn(t, 3*time.Second)
	if _, err := zksync.NewSession(ctx, c, zksync.WithTTL(4*time.Second)); !errors.Is(err, distsync.ErrInvalidConfig) || !strings.Contains(err.Error(), "3s") {
		t.Errorf("NewSession with another TTL: %v, want ErrInvalidConfig naming 3s", err)
	}
	for _, opt := range []zksync.Option{zksync.WithAuth("digest", []byte("a:b")), zksync.WithDialer(nil)} {
		if _, err := zksync.NewSession(ctx, c, opt); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("NewSession with a Dial-only option: %v, want ErrInvalidConfig", err)
		}
	}
	s, err := zksync.NewSession(ctx, c, zksync.WithTTL(3*time.Second), zksync.WithDisconnectGrace(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if s.TTL() != 3*time.Second || s.SessionID() != c.SessionID() {
		t.Fatalf("TTL %v, session 0x%x; want 3s, 0x%x", s.TTL(), s.SessionID(), c.SessionID())
	}
	m, err := s.Mutex(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	held, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := m.Lock(ctx)
		waiting <- err
	}()
	path := m.(*zksync.Mutex).Path()
	waitChildren(t, c, path, 2)
	_ = s.Close()
	<-held.Done()
	if err := <-waiting; !errors.Is(err, distsync.ErrClosed) {
		t.Errorf("Lock waiting through Close: %v, want ErrClosed", err)
	}
	if children, _, err := c.Children(path); err != nil || len(children) != 0 {
		t.Errorf("nodes after Close: %q, %v; want none", children, err)
	}
	if c.State() != zk.StateHasSession {
		t.Errorf("the caller's connection is %v after Close, want it open", c.State())
	}
}

// TestNewSessionWithoutSession: NewSession on a connection that gets no
// session fails when ctx ends, and leaves nothing running.
func TestNewSessionWithoutSession(t *testing.T) {
	c, _, err := zk.Connect([]string{"127.0.0.1:1"}, time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := zksync.NewSession(ctx, c); !errors.Is(err, distsync.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("NewSession on a connection without a session: %v, want ErrUnavailable and DeadlineExceeded", err)
	}
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// TestNewSessionFollowsDisconnection: a lease taken through a caller's
// connection ends when that connection drops (the server restarts), and
// the Session works again afterwards.
func TestNewSessionFollowsConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := conn(t, 20*time.Second)
	s, err := zksync.NewSession(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, _ := s.Mutex(t.Name())
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	server.Kill()
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		_ = server.Restart()
		t.Fatal("lease not lost within 5s of the server's death")
	}
	if !errors.Is(l.Err(), distsync.ErrLost) {
		t.Errorf("Err = %v, want ErrLost", l.Err())
	}
	if err := server.Restart(); err != nil {
		t.Fatal(err)
	}
	l2, err := m.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock after the restart: %v", err)
	}
	_ = l2.Release(ctx)
	_ = l.Release(ctx)
	waitChildren(t, c, m.(*zksync.Mutex).Path(), 0)
}

// TestDigestACLDenied: under a root whose ACL is a digest, a Session with
// the digest works and one without gets ErrDenied at once from every call.
func TestDigestACLDenied(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const root = "/zksync-test-acl"
	acl := zk.DigestACL(zk.PermAll, "owner", "pw")
	admin := conn(t, 4*time.Second)
	if err := admin.AddAuth("digest", []byte("owner:pw")); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Create(root, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatal(err)
	}
	ok := session(t, zksync.WithPrefix(root), zksync.WithACL(acl), zksync.WithAuth("digest", []byte("owner:pw")))
	m, _ := ok.Mutex(t.Name())
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock with the digest: %v", err)
	}
	_ = l.Release(ctx)

	no := session(t, zksync.WithPrefix(root))
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, distsync.ErrDenied) || errors.Is(err, distsync.ErrUnavailable) {
			t.Errorf("%s without the digest: %v, want ErrDenied only", what, err)
		}
	}
	start := time.Now()
	m, _ = no.Mutex(t.Name())
	_, err = m.Lock(ctx)
	check("Lock", err)
	_, err = m.TryLock(ctx)
	check("TryLock", err)
	rw, _ := no.RWMutex(t.Name())
	_, err = rw.RLock(ctx)
	check("RLock", err)
	sem, err := no.Semaphore(ctx, t.Name(), 2)
	if err == nil {
		_, err = sem.Acquire(ctx)
	}
	check("Acquire", err)
	e, _ := no.Election(t.Name())
	_, err = e.Campaign(ctx, nil)
	check("Campaign", err)
	err = distsync.Run(ctx, e, nil, distsync.Callbacks{
		OnStartedLeading: func(context.Context, distsync.Leadership) { t.Error("a denied Session led") },
	})
	check("Run", err)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("denied calls took %v, want at once", d)
	}
}

// TestAuthRefused: Dial with credentials the server refuses fails with
// ErrDenied.
func TestAuthRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := zksync.Dial(ctx, server.Servers(), zksync.WithTTL(4*time.Second), zksync.WithAuth("no-such-scheme", []byte("x")))
	if !errors.Is(err, distsync.ErrDenied) {
		t.Fatalf("Dial with refused credentials: %v, want ErrDenied", err)
	}
}
