package mutex_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/testserver"
	"github.com/distsync/distsync/mutex"
	"go.etcd.io/etcd/client/v3/concurrency"
)

var etcd *testserver.Etcd

func TestMain(m *testing.M) {
	testserver.RunWithEtcd(m, func(e *testserver.Etcd) { etcd = e })
}

func session(t *testing.T, ttl int) *concurrency.Session {
	t.Helper()
	s, err := concurrency.NewSession(etcd.Client(t), concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestNewRejectsBadInput(t *testing.T) {
	s := session(t, 5)
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
	ctx := context.Background()
	for _, ttl := range []time.Duration{0, time.Second, 2500 * time.Millisecond, -time.Second} {
		if _, err := mutex.NewWithClient(ctx, etcd.Client(t), "ok", mutex.WithTTL(ttl)); !errors.Is(err, distsync.ErrInvalidConfig) {
			t.Errorf("WithTTL(%v): got %v, want ErrInvalidConfig", ttl, err)
		}
	}
	if _, err := mutex.NewWithClient(ctx, nil, "ok"); !errors.Is(err, distsync.ErrInvalidConfig) {
		t.Errorf("NewWithClient(nil client): got %v, want ErrInvalidConfig", err)
	}
}

func TestLockReleaseTokens(t *testing.T) {
	ctx := context.Background()
	m, err := mutex.NewWithClient(ctx, etcd.Client(t), t.Name(), mutex.WithTTL(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var last uint64
	for i := 0; i < 3; i++ {
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
