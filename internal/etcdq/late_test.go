package etcdq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/telemetry"
)

// TestLateFollower: a lease acquired without waiting starts its follower
// late, yet a deletion of its key before then is reported when it starts,
// and the Session's Close ends such a lease before Close returns.
func TestLateFollower(t *testing.T) {
	ctx := context.Background()
	s, err := NewSession(ctx, etcd.Client(t), 5*time.Second, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, err := NewQueue(s, t.Name())
	if err != nil {
		t.Fatal(err)
	}
	tg := s.Recorder().Target(telemetry.Mutex, "", q.name)

	l, err := q.Acquire(ctx, tg, Exclusive, "v")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.c.Delete(ctx, l.Key()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
		if !errors.Is(l.Err(), distsync.ErrLost) {
			t.Fatalf("Err after the key was deleted = %v, want ErrLost", l.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a deletion before the follower started was never reported")
	}

	l, err = q.Acquire(ctx, tg, Exclusive, "v")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
		if !errors.Is(l.Err(), distsync.ErrLost) {
			t.Fatalf("Err after Close = %v, want ErrLost", l.Err())
		}
	default:
		t.Fatal("Close returned with a lease of the Session not ended")
	}
}
