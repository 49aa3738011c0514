package mutex_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/internal/testserver"
	"github.com/distsync/distsync/mutex"
	"go.etcd.io/etcd/client/v3/concurrency"
)

var etcd *testserver.Etcd

func TestMain(m *testing.M) {
	testserver.RunWithEtcd(m, func(e *testserver.Etcd) { etcd = e })
}

// open returns the Mutex called name on a Session of its own.
func open(t *testing.T, name string) distsync.Mutex {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdsync.NewSession(ctx, etcd.Client(t), etcdsync.WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	m, err := s.Mutex(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func callerSession(t *testing.T) *concurrency.Session {
	t.Helper()
	s, err := concurrency.NewSession(etcd.Client(t), concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestNewRejectsBadInput(t *testing.T) {
	s := callerSession(t)
	for _, tc := range []struct {
		name string
		want error
	}{
		{"", distsync.ErrInvalidName},
		{strings.Repeat("x", distsync.MaxNameLen+1), distsync.ErrInvalidName},
		{"bad\x00name", distsync.ErrInvalidName},
		{"bad\xffutf8", distsync.ErrInvalidName},
	} {
		if _, err := mutex.New(s, tc.name); !errors.Is(err, tc.want) {
			t.Errorf("New(%q): got %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := mutex.New(nil, "ok"); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("New(nil session): got %v, want ErrInvalidConfig", err)
	}
}

func TestLockReleaseTokens(t *testing.T) {
	ctx := context.Background()
	m := open(t, t.Name())
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

// TestCallerSessionEnds: a Mutex on a session of the caller's is never
// renewed: once the session ended, its lease is lost and Lock fails with
// ErrClosed.
func TestCallerSessionEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := callerSession(t)
	m, err := mutex.New(s, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Client(t).Revoke(ctx, s.Lease()); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	if !errors.Is(l.Err(), distsync.ErrLost) {
		t.Fatalf("lease after its session was revoked: %v, want ErrLost", l.Err())
	}
	<-s.Done() // the session's own keep-alive learns of it
	if _, err := m.Lock(ctx); !errors.Is(err, distsync.ErrClosed) {
		t.Fatalf("Lock on an ended session: got %v, want ErrClosed", err)
	}
}
