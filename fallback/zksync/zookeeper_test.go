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

var server *testserver.ZooKeeper

func TestMain(m *testing.M) {
	testserver.RunWithZooKeeper(m, func(z *testserver.ZooKeeper) { server = z })
}

func session(t *testing.T, opts ...zksync.Option) *zksync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := zksync.Dial(ctx, server.Servers(), append([]zksync.Option{zksync.WithTTL(4 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestNodePath(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"plain", "/r/plain"},
		{"a/b", "/r/a%2Fb"},
		{"50%", "/r/50%25"},
		{".", "/r/%2E"},
		{"..", "/r/%2E."},
		{"a.b", "/r/a.b"},
		{"é", "/r/é"},
		{"\ue000", "/r/%EE%80%80"},
		{"\U0001F600", "/r/%F0%9F%98%80"},
		{"\ufff5", "/r/%EF%BF%B5"},
	} {
		got, err := zksync.NodePath("/r", tc.name)
		if err != nil || got != tc.want {
			t.Errorf("NodePath(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", distsync.MaxNameLen+1), "a\x00b", "bad\xff"} {
		if _, err := zksync.NodePath("/r", bad); !errors.Is(err, distsync.ErrInvalidName) {
			t.Errorf("NodePath(%q): got %v, want ErrInvalidName", bad, err)
		}
	}
}

// TestAwkwardNamesAreStorable locks names with every kind of character
// ZooKeeper refuses in a path, on the real server.
func TestAwkwardNamesAreStorable(t *testing.T) {
	ctx := context.Background()
	s := session(t)
	for _, name := range []string{t.Name() + "/.", ".", "..", "\ue000", "\U0001F600", "\ufff5", "zookeeper", "a//b"} {
		m, err := s.Mutex(name)
		if err != nil {
			t.Fatal(err)
		}
		l, err := m.Lock(ctx)
		if err != nil {
			t.Fatalf("Lock(%q): %v", name, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := session(t)
	if _, err := s.Mutex(""); !errors.Is(err, distsync.ErrInvalidName) {
		t.Errorf("Mutex(\"\"): got %v, want ErrInvalidName", err)
	}
	if _, err := s.RWMutex("bad\x01"); !errors.Is(err, distsync.ErrInvalidName) {
		t.Errorf("RWMutex: got %v, want ErrInvalidName", err)
	}
	if _, err := s.Election(""); !errors.Is(err, distsync.ErrInvalidName) {
		t.Errorf("Election(\"\"): got %v, want ErrInvalidName", err)
	}
	if _, err := s.Semaphore(ctx, "ok", 0); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("Semaphore(limit 0): got %v, want ErrInvalidConfig", err)
	}
	if _, err := zksync.NewSession(ctx, nil); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("NewSession(nil): got %v, want ErrInvalidConfig", err)
	}
	for _, opts := range [][]zksync.Option{
		{zksync.WithTTL(0)},
		{zksync.WithTTL(-time.Second)},
		{zksync.WithTTL(1500 * time.Microsecond)},
		{zksync.WithTTL(3 * time.Second), zksync.WithDisconnectGrace(2 * time.Second)},
		{zksync.WithDisconnectGrace(-time.Second)},
		{zksync.WithPrefix("/")},
		{zksync.WithPrefix("relative")},
		{zksync.WithPrefix("/a/")},
		{zksync.WithPrefix("/a/../b")},
		{zksync.WithACL(nil)},
		{zksync.WithDialer(nil)},
		{zksync.WithAuth("", nil)},
		{zksync.WithIdentity("")},
		{zksync.WithIdentity("host\n1")},
	} {
		if _, err := zksync.Dial(ctx, server.Servers(), opts...); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("Dial with bad options: got %v, want ErrInvalidConfig", err)
		}
	}
	if _, err := zksync.Dial(ctx, nil); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("Dial(no servers): got %v, want ErrInvalidConfig", err)
	}
}

func TestLockReleaseTokens(t *testing.T) {
	ctx := context.Background()
	m, err := session(t).Mutex(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for range 3 {
		l, err := m.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if l.Token() <= last {
			t.Fatalf("token %d not above previous %d", l.Token(), last)
		}
		last = l.Token()
		if _, err := m.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
			t.Fatalf("TryLock while held: got %v, want ErrWouldBlock", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatalf("second Release: %v", err)
		}
		if !errors.Is(l.Err(), distsync.ErrReleased) {
			t.Fatalf("Err after Release: got %v, want ErrReleased", l.Err())
		}
	}
}

// TestClosedSession: leases end as lost and calls fail with ErrClosed.
func TestClosedSession(t *testing.T) {
	ctx := context.Background()
	s := session(t)
	m, _ := s.Mutex(t.Name())
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	<-l.Done()
	if !errors.Is(l.Err(), distsync.ErrLost) {
		t.Fatalf("Err after Close: got %v, want ErrLost", l.Err())
	}
	if _, err := m.Lock(ctx); !errors.Is(err, distsync.ErrClosed) {
		t.Fatalf("Lock after Close: got %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestReadersWaitForOlderWriterOnly checks the RWMutex recipe in order: a
// reader queued behind a waiting writer waits, one ahead of it does not.
func TestReadersWaitForOlderWriterOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rwi, err := session(t).RWMutex(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	rw := rwi.(*zksync.RWMutex)
	r1, err := rw.RLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w := make(chan distsync.Lease, 1)
	go func() {
		l, err := rw.Lock(ctx)
		if err != nil {
			t.Error(err)
		}
		w <- l
	}()
	waitChildren(t, rw.Session().Conn(), rw.Path(), 2)
	if _, err := rw.TryRLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryRLock behind a waiting writer: got %v, want ErrWouldBlock", err)
	}
	_ = r1.Release(ctx)
	wl := <-w
	if wl == nil {
		return
	}
	_ = wl.Release(ctx)
}

func waitChildren(t *testing.T, c *zk.Conn, path string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ch, _, err := c.Children(path)
		if err == nil && len(ch) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d children of %s: %v %v", n, path, ch, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
