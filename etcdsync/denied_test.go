package etcdsync_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// authMember starts a member of its own (enabling authentication on the
// shared one would lock every other test out), with a root user, auth
// enabled, and a user "denied" whose role may use "unrelated/" only.
func authMember(t *testing.T) *testserver.Etcd {
	t.Helper()
	m, err := testserver.StartEtcd()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.EnableAuth(ctx, "denied", "denied-password", "unrelated/"); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDenied: a Session dialed as a user whose role covers none of the
// names gets ErrDenied at once from every acquire call and from Run,
// while their context would allow a minute; nothing is retried. A user
// with a wrong password is denied at Dial. The control is root, whose
// calls succeed on the same member.
func TestDenied(t *testing.T) {
	m := authMember(t)
	dial := func(user, password string) (*etcdsync.Session, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return etcdsync.Dial(ctx, clientv3.Config{
			Endpoints: m.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
			Username: user, Password: password,
		}, etcdsync.WithTTL(time.Second))
	}
	if _, err := dial("denied", "wrong-password"); !errors.Is(err, distsync.ErrDenied) {
		t.Errorf("Dial with a wrong password: got %v, want ErrDenied", err)
	}
	root, err := dial("root", testserver.RootPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	s, err := dial("denied", "denied-password")
	if errors.Is(err, distsync.ErrDenied) {
		t.Logf("Dial as the denied user: %v", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const name = "denied-name"
	for _, who := range []struct {
		label string
		s     *etcdsync.Session
		want  error
	}{{"root", root, nil}, {"denied", s, distsync.ErrDenied}} {
		m, _ := who.s.Mutex(name)
		rw, _ := who.s.RWMutex(name)
		e, _ := who.s.Election(name + "-election")
		calls := map[string]func() (distsync.Lease, error){
			"Mutex.Lock":      func() (distsync.Lease, error) { return m.Lock(ctx) },
			"Mutex.TryLock":   func() (distsync.Lease, error) { return m.TryLock(ctx) },
			"RWMutex.RLock":   func() (distsync.Lease, error) { return rw.RLock(ctx) },
			"RWMutex.TryLock": func() (distsync.Lease, error) { return rw.TryLock(ctx) },
			"Semaphore.Acquire": func() (distsync.Lease, error) {
				sem, err := who.s.Semaphore(ctx, name+"-semaphore", 2)
				if err != nil {
					return nil, err
				}
				return sem.Acquire(ctx)
			},
			"Election.Campaign": func() (distsync.Lease, error) {
				l, err := e.Campaign(ctx, []byte("v"))
				if err != nil {
					return nil, err
				}
				return l, nil
			},
		}
		for what, call := range calls {
			start := time.Now()
			l, err := call()
			took := time.Since(start)
			if err == nil {
				_ = l.Release(ctx)
			}
			if who.want == nil && err != nil {
				t.Errorf("%s as %s: %v", what, who.label, err)
			}
			if who.want != nil && (!errors.Is(err, who.want) || took > 2*time.Second) {
				t.Errorf("%s as %s: got %v after %v, want ErrDenied at once", what, who.label, err, took)
			}
		}
		if who.want == nil {
			continue
		}
		start := time.Now()
		err := distsync.Run(ctx, e, []byte("v"), distsync.Callbacks{
			OnStartedLeading: func(context.Context, distsync.Leadership) { t.Error("denied user leads") },
		})
		if !errors.Is(err, distsync.ErrDenied) || time.Since(start) > 2*time.Second {
			t.Errorf("Run as denied: got %v after %v, want ErrDenied at once", err, time.Since(start))
		}
		if _, err := e.Leader(ctx); !errors.Is(err, distsync.ErrDenied) {
			t.Errorf("Leader as denied: got %v, want ErrDenied", err)
		}
		select {
		case _, ok := <-e.Observe(ctx):
			if ok {
				t.Error("Observe as denied delivered a value")
			}
		case <-time.After(5 * time.Second):
			t.Error("Observe as denied still open after 5s: retried")
		}
	}
}
