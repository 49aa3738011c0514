package cronjob

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/etcdsync"
)

// TestRunsOnOneHost: while one host runs the job, another skips it.
func TestRunsOnOneHost(t *testing.T) {
	etcd := distsynctest.Etcd(t)
	hostA := etcd.Session(t, etcdsync.WithTTL(time.Second))
	hostB := etcd.Session(t, etcdsync.WithTTL(time.Second))
	ctx := context.Background()

	err := RunOnce(ctx, hostA, "report", func(ctx context.Context, _ distsync.Lease) error {
		if err := RunOnce(ctx, hostB, "report", nil); !errors.Is(err, ErrSkipped) {
			t.Errorf("host B while A runs: %v, want ErrSkipped", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("host A: %v", err)
	}
}

// TestStopsOnLostLock: when the lock is lost while the job runs, the job's
// context is cancelled and RunOnce says the lock was lost. The loss is
// injected both ways a lock is lost in production: its holder's state is
// deleted, and its session expires.
func TestStopsOnLostLock(t *testing.T) {
	etcd := distsynctest.Etcd(t)
	for _, tc := range []struct {
		name   string
		inject func(t *testing.T, s distsync.Session, l distsync.Lease)
		reason distsync.LossReason
	}{
		{"deleted", func(t *testing.T, _ distsync.Session, l distsync.Lease) { distsynctest.DeleteHolder(t, l) }, distsync.LossDeleted},
		{"expired", func(t *testing.T, s distsync.Session, _ distsync.Lease) { distsynctest.Expire(t, s) }, distsync.LossSessionEnded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := etcd.Session(t, etcdsync.WithTTL(time.Second))
			err := RunOnce(context.Background(), s, "report-"+tc.name, func(ctx context.Context, l distsync.Lease) error {
				tc.inject(t, s, l)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(10 * time.Second):
					t.Error("the job's context outlived the lock")
					return nil
				}
			})
			if !errors.Is(err, distsync.ErrLost) || distsync.LostReason(err) != tc.reason {
				t.Fatalf("RunOnce: %v, want ErrLost (%s)", err, tc.reason)
			}
			// The next run takes the lock again on the same Session.
			if err := RunOnce(context.Background(), s, "report-"+tc.name, func(context.Context, distsync.Lease) error { return nil }); err != nil {
				t.Fatalf("the next run: %v", err)
			}
		})
	}
}

// TestSkipsOnMemory is the fast unit test of the same logic, with no
// server: Memory implements the whole contract in the process.
func TestSkipsOnMemory(t *testing.T) {
	var m distsynctest.Memory
	hostA, _ := m.NewSession("host-a")
	hostB, _ := m.NewSession("host-b")
	defer hostA.Close()
	defer hostB.Close()
	ran := 0
	err := RunOnce(context.Background(), hostA, "report", func(ctx context.Context, l distsync.Lease) error {
		ran++
		if err := RunOnce(ctx, hostB, "report", nil); !errors.Is(err, ErrSkipped) {
			t.Errorf("host B while A runs: %v, want ErrSkipped", err)
		}
		distsynctest.DeleteHolder(t, l) // the lock is lost mid-run
		<-ctx.Done()
		return nil
	})
	if ran != 1 || !errors.Is(err, distsync.ErrLost) {
		t.Fatalf("ran %d times, RunOnce: %v; want once and ErrLost", ran, err)
	}
}
