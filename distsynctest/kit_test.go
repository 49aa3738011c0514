package distsynctest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// zkShared is the ZooKeeper server of this package's tests: a JVM takes
// seconds to start, so they share one and keep apart by names.
var zkShared *ZooKeeperServer

func TestMain(m *testing.M) {
	z, err := StartZooKeeper()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	zkShared = z
	code := m.Run()
	z.Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// kitBackends opens a Session of each backend on a server of the kit.
func kitBackends() map[string]func(t *testing.T) distsync.Session {
	return map[string]func(t *testing.T) distsync.Session{
		"etcd": func(t *testing.T) distsync.Session {
			return Etcd(t).Session(t, etcdsync.WithTTL(time.Second))
		},
		"redis": func(t *testing.T) distsync.Session {
			return Redis(t).Session(t, redissync.WithTTL(time.Second))
		},
		"zookeeper": func(t *testing.T) distsync.Session {
			return zkShared.Session(t, zksync.WithTTL(time.Second))
		},
		"memory": func(t *testing.T) distsync.Session {
			s, err := new(Memory).NewSession("")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
	}
}

// TestLossInjection: on every backend, Expire ends every lease of a
// Session with LossSessionEnded (Redis: its entries expire, which its
// renewal reports), DeleteHolder ends one with LossDeleted, the Session
// acquires again after both, and Entries sees the holder while it holds
// and nothing once it is gone.
func TestLossInjection(t *testing.T) {
	for name, open := range kitBackends() {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s := open(t)
			m, err := s.Mutex(t.Name())
			if err != nil {
				t.Fatal(err)
			}
			l, err := m.Lock(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := Entries(t, s, t.Name()); len(got) != 1 {
				t.Fatalf("Entries while held: %q, want one", got)
			}
			Expire(t, s)
			awaitLoss(t, l, expireReason[name])

			l, err = m.Lock(ctx)
			if err != nil {
				t.Fatalf("Lock after Expire: %v", err)
			}
			DeleteHolder(t, l)
			awaitLoss(t, l, distsync.LossDeleted)
			if got := Entries(t, s, t.Name()); len(got) != 0 {
				t.Fatalf("Entries after DeleteHolder: %q, want none", got)
			}
			l, err = m.Lock(ctx)
			if err != nil {
				t.Fatalf("Lock after DeleteHolder: %v", err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if got := Entries(t, s, t.Name()); len(got) != 0 {
				t.Fatalf("Entries after Release: %q, want none", got)
			}
		})
	}
}

// expireReason is the LostReason after Expire, per backend, as Expire
// documents it.
var expireReason = map[string]distsync.LossReason{
	"etcd":      distsync.LossSessionEnded,
	"redis":     distsync.LossRenewal,
	"zookeeper": distsync.LossDisconnected,
	"memory":    distsync.LossSessionEnded,
}

// awaitLoss waits up to 10 s for l to end as lost, with reason want
// (any, when empty).
func awaitLoss(t *testing.T, l distsync.Lease, want distsync.LossReason) {
	t.Helper()
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the lease did not end within 10 s")
	}
	err := l.Err()
	if !errors.Is(err, distsync.ErrLost) {
		t.Fatalf("Err = %v, want ErrLost", err)
	}
	if got := distsync.LostReason(err); want != "" && got != want {
		t.Fatalf("LostReason = %q, want %q (%v)", got, want, err)
	}
}

// TestDeleteHolderServesNext: a waiter learns of a holder deleted from
// outside and takes the lock, on every backend.
func TestDeleteHolderServesNext(t *testing.T) {
	for name, open := range kitBackends() {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s := open(t)
			m, err := s.Mutex(t.Name())
			if err != nil {
				t.Fatal(err)
			}
			held, err := m.Lock(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			go func() {
				l, err := m.Lock(ctx)
				if err == nil {
					err = l.Release(ctx)
				}
				got <- err
			}()
			for len(Entries(t, s, t.Name())) < 2 {
				time.Sleep(5 * time.Millisecond)
			}
			DeleteHolder(t, held)
			if err := <-got; err != nil {
				t.Fatalf("the waiter: %v", err)
			}
		})
	}
}

// TestInjectionRefusesStrangers: the injections fail the test, with a
// message, for a Session or Lease that is none of the kit's.
func TestInjectionRefusesStrangers(t *testing.T) {
	for name, inject := range map[string]func(tb testing.TB){
		"Expire":       func(tb testing.TB) { Expire(tb, nil) },
		"Entries":      func(tb testing.TB) { Entries(tb, nil, "x") },
		"DeleteHolder": func(tb testing.TB) { DeleteHolder(tb, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			r := &recorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				inject(r)
			}()
			<-done
			if !r.failed {
				t.Fatalf("%s accepted a nil value", name)
			}
		})
	}
}

// recorder is a testing.TB whose Fatalf records the failure and ends the
// goroutine, as testing's does.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
	runtime.Goexit()
}

// TestEtcdGrantsOneSecond: the kit's member grants the one-second TTL
// etcd's default ticks would refuse, and refuses what etcd cannot store.
func TestEtcdGrantsOneSecond(t *testing.T) {
	e := Etcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := e.Client(t)
	s, err := etcdsync.NewSession(ctx, c, etcdsync.WithTTL(time.Second))
	if err != nil {
		t.Fatalf("a 1 s session on the kit's member: %v", err)
	}
	_ = s.Close()
	if _, err := etcdsync.NewSession(ctx, c, etcdsync.WithTTL(1500*time.Millisecond)); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Fatalf("a 1.5 s TTL: %v, want ErrInvalidConfig", err)
	}
}

// TestEtcdDefaultTicks: with etcd's default heartbeat the member grants no
// less than 2 s, and an etcdsync Session asking for 1 s is refused with
// ErrInvalidConfig: the TTL minimum is the server's, not a constant.
func TestEtcdDefaultTicks(t *testing.T) {
	e := Etcd(t, WithTick(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := e.Client(t)
	if s, err := etcdsync.NewSession(ctx, c, etcdsync.WithTTL(time.Second)); !errors.Is(err, distsync.ErrInvalidConfig) {
		if err == nil {
			_ = s.Close()
		}
		t.Fatalf("a 1 s TTL at 100 ms ticks: %v, want ErrInvalidConfig", err)
	}
	s, err := etcdsync.NewSession(ctx, c, etcdsync.WithTTL(2*time.Second))
	if err != nil {
		t.Fatalf("a 2 s TTL at 100 ms ticks: %v", err)
	}
	_ = s.Close()
}

// TestEtcdCluster: a Session on one member of three loses its lock when
// that member is blackholed or isolated, and takes it again once healed;
// the cluster elects a new leader when its leader stops, and takes the
// restarted member back.
func TestEtcdCluster(t *testing.T) {
	e := EtcdCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lead := e.WaitLeader(t)
	i := (lead + 1) % 3 // a follower
	s := e.MemberSession(t, i, etcdsync.WithTTL(time.Second))
	m, err := s.Mutex(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	lockLoseAgain := func(fault, heal func(), how string) {
		t.Helper()
		l, err := m.Lock(ctx)
		if err != nil {
			t.Fatalf("Lock before %s: %v", how, err)
		}
		fault()
		awaitLoss(t, l, "")
		heal()
		l, err = m.Lock(ctx)
		if err != nil {
			t.Fatalf("Lock after %s healed: %v", how, err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	lockLoseAgain(func() { e.Blackhole(t, i) }, func() { e.Unblackhole(t, i) }, "blackhole")
	lockLoseAgain(func() { e.Isolate(t, i) }, func() { e.Heal(t, i); e.WaitLeader(t) }, "isolation")

	lead = e.WaitLeader(t)
	e.Stop(t, lead)
	if now := e.WaitLeader(t); now == lead || now < 0 {
		t.Fatalf("leader after stopping member %d: %d", lead, now)
	}
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatalf("Lock with the old leader stopped: %v", err)
	}
	e.Restart(t, lead)
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := Entries(t, s, t.Name()); len(got) != 0 {
		t.Fatalf("Entries at the end: %q", got)
	}
}

// TestProxy: a client through a Proxy fails while it is cut or
// blackholed, and works again once healed.
func TestProxy(t *testing.T) {
	r := Redis(t)
	p := NewProxy(t, r.Addr())
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	defer c.Close()
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		return c.Ping(ctx).Err()
	}
	if err := ping(); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Cut()
	if err := ping(); err == nil {
		t.Fatal("a PING passed a cut proxy")
	}
	p.Heal()
	if err := ping(); err != nil {
		t.Fatalf("after Heal: %v", err)
	}
	p.Blackhole()
	if err := ping(); err == nil {
		t.Fatal("a PING passed a blackhole")
	}
	p.Heal()
	p.Reset()
	if err := ping(); err != nil {
		t.Fatalf("after the blackhole healed: %v", err)
	}
}
