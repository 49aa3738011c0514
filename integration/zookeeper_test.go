package integration

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/go-zookeeper/zk"
)

// zkServer is the ZooKeeper server shared by this package's tests and
// benchmarks; each test uses names of its own. Its proxy records the
// session passwords, so that distsynctest.Expire can end a test's session
// from outside.
var zkServer *distsynctest.ZooKeeperServer

func init() {
	servers = append(servers, func() (func(), error) {
		z, err := distsynctest.StartZooKeeper()
		if err != nil {
			return nil, err
		}
		zkServer = z
		return z.Stop, nil
	})
}

// zkTestTimeout is the session timeout of the tests' sessions.
const zkTestTimeout = 4 * time.Second

// zkSession dials a session of its own to the server, closed at cleanup.
func zkSession(t testing.TB, opts ...zksync.Option) *zksync.Session {
	t.Helper()
	return zkSessionTo(t, zkServer.Addr(), opts...)
}

// zkSessionTo is zkSession dialed to addr (a proxy of the server).
func zkSessionTo(t testing.TB, addr string, opts ...zksync.Option) *zksync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts = append([]zksync.Option{zksync.WithTTL(zkTestTimeout)}, opts...)
	s, err := zksync.Dial(ctx, []string{addr}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// zkConn is a plain go-zookeeper connection, closed at cleanup.
func zkConn(t testing.TB) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect(zkServer.Servers(), zkTestTimeout, zk.WithLogInfo(false), zk.WithLogger(quietZK{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

type quietZK struct{}

func (quietZK) Printf(string, ...any) {}

// zkKeys lists the children of a name's node: its holders and waiters.
func zkKeys(t *testing.T, name string) []string {
	t.Helper()
	p, err := zksync.NodePath(zksync.DefaultPrefix, name)
	if err != nil {
		t.Fatal(err)
	}
	children, _, err := zkAdmin(t).Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return children
}

var (
	zkAdminOnce sync.Mutex
	zkAdminConn = map[testing.TB]*zk.Conn{}
)

// zkAdmin returns one plain connection per test, for reads and deletes.
func zkAdmin(t testing.TB) *zk.Conn {
	zkAdminOnce.Lock()
	defer zkAdminOnce.Unlock()
	if c, ok := zkAdminConn[t]; ok {
		return c
	}
	c := zkConn(t)
	zkAdminConn[t] = c
	t.Cleanup(func() {
		zkAdminOnce.Lock()
		delete(zkAdminConn, t)
		zkAdminOnce.Unlock()
	})
	return c
}

func zkMutex(t *testing.T, s *zksync.Session, name string) *zksync.Mutex {
	t.Helper()
	m, err := zkNewMutex(s, name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// zkNewMutex, zkNewRWMutex, zkNewSemaphore and zkNewElection open a
// primitive of s as its zksync type.
func zkNewMutex(s *zksync.Session, name string) (*zksync.Mutex, error) {
	m, err := s.Mutex(name)
	if err != nil {
		return nil, err
	}
	return m.(*zksync.Mutex), nil
}

func zkNewRWMutex(s *zksync.Session, name string) (*zksync.RWMutex, error) {
	rw, err := s.RWMutex(name)
	if err != nil {
		return nil, err
	}
	return rw.(*zksync.RWMutex), nil
}

func zkNewSemaphore(ctx context.Context, s *zksync.Session, name string, limit int64) (*zksync.Semaphore, error) {
	sem, err := s.Semaphore(ctx, name, limit)
	if err != nil {
		return nil, err
	}
	return sem.(*zksync.Semaphore), nil
}

func zkNewElection(s *zksync.Session, name string) (*zksync.Election, error) {
	e, err := s.Election(name)
	if err != nil {
		return nil, err
	}
	return e.(*zksync.Election), nil
}

// TestZooKeeperMutexInterop shows that a distsync Mutex and go-zookeeper's
// own zk.Lock on the Mutex's node exclude each other, both ways.
func TestZooKeeperMutexInterop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ours := zkMutex(t, zkSession(t), t.Name())
	theirs := zk.NewLock(zkConn(t), ours.Path(), zk.WorldACL(zk.PermAll))

	l, err := ours.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- theirs.Lock() }()
	select {
	case err := <-got:
		t.Fatalf("zk.Lock returned %v while distsync holds", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if _, err := ours.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("distsync TryLock while zk.Lock holds: got %v, want ErrWouldBlock", err)
	}
	waited := make(chan distsync.Lease, 1)
	go func() {
		l, err := ours.Lock(ctx)
		if err != nil {
			t.Error(err)
		}
		waited <- l
	}()
	select {
	case <-waited:
		t.Fatal("distsync Lock returned while zk.Lock holds")
	case <-time.After(300 * time.Millisecond):
	}
	if err := theirs.Unlock(); err != nil {
		t.Fatal(err)
	}
	if l := <-waited; l != nil {
		_ = l.Release(ctx)
	}
}

// TestZooKeeperNewSessionAfterExpiry: a Session on the caller's own
// connection follows it without its events. When its ZooKeeper session is
// ended from outside, the lease and a waiting Lock end with ErrLost, and
// the Session works again in the session go-zookeeper opens next; Close
// then deletes the Session's nodes and leaves the connection open.
func TestZooKeeperNewSessionAfterExpiry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := t.Name()
	conn, _, err := zk.Connect(zkServer.Servers(), zkTestTimeout, zk.WithLogInfo(false), zk.WithLogger(quietZK{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := zksync.NewSession(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.TTL() != zkTestTimeout {
		t.Fatalf("TTL() = %v, want the connection's %v", s.TTL(), zkTestTimeout)
	}
	m := zkMutex(t, s, name)
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := zkMutex(t, s, name).Lock(ctx)
		waiting <- err
	}()
	waitKeys(t, zkKeys, name, 2)
	old := s.SessionID()
	distsynctest.Expire(t, s)
	waitLost(t, l, 5*time.Second, "session expired from outside")
	select {
	case err := <-waiting:
		if !errors.Is(err, distsync.ErrLost) {
			t.Fatalf("Lock waiting through the expiry: %v, want ErrLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Lock waiting through the expiry did not return within 10s")
	}
	l2, err := m.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock after the expiry: %v", err)
	}
	if s.SessionID() == old || s.SessionID() != conn.SessionID() {
		t.Fatalf("session 0x%x after the expiry (was 0x%x, connection has 0x%x)", s.SessionID(), old, conn.SessionID())
	}
	if l2.Token() <= l.Token() {
		t.Fatalf("token %d not above %d", l2.Token(), l.Token())
	}
	_ = s.Close()
	if !errors.Is(l2.Err(), distsync.ErrLost) {
		t.Fatalf("lease after Close: %v, want ErrLost", l2.Err())
	}
	waitKeys(t, zkKeys, name, 0)
	if conn.State() != zk.StateHasSession {
		t.Fatalf("connection %v after Close, want it open", conn.State())
	}
}
