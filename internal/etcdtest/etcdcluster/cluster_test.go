package etcdcluster_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/distsync/distsync/internal/etcdtest/etcdcluster"
)

func TestClusterFaults(t *testing.T) {
	c := etcdcluster.New(t, 3)
	cli := c.Client(t)

	put := func(t *testing.T, cli *clientv3.Client, timeout time.Duration) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		_, err := cli.Put(ctx, t.Name(), "v")
		return err
	}

	t.Run("leader stop and restart", func(t *testing.T) {
		old := c.WaitLeader(t)
		c.Stop(t, old)
		lead := c.WaitLeader(t)
		if lead == old {
			t.Fatalf("leader after stopping member %d is still %d", old, lead)
		}
		if err := put(t, cli, 10*time.Second); err != nil {
			t.Fatalf("Put with member %d stopped: %v", old, err)
		}
		c.Restart(t, old)
		if err := put(t, c.MemberClient(t, old), 10*time.Second); err != nil {
			t.Fatalf("Put through restarted member %d: %v", old, err)
		}
	})

	t.Run("blackhole", func(t *testing.T) {
		i := (c.WaitLeader(t) + 1) % c.Size()
		// Made before the blackhole: a client cannot even be created
		// against a blackholed member.
		pinned := c.MemberClient(t, i)
		if err := put(t, pinned, 10*time.Second); err != nil {
			t.Fatalf("Put before blackhole: %v", err)
		}
		c.Blackhole(t, i)
		// The first request may still go out on the connection Blackhole
		// reset, and fail fast; from then on the client dials into silence.
		err := put(t, pinned, 500*time.Millisecond)
		if status.Code(err) != codes.Unavailable && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("first Put through blackholed member %d: err = %v, want Unavailable or %v", i, err, context.DeadlineExceeded)
		}
		for range 2 {
			if err := put(t, pinned, 500*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Put through blackholed member %d: err = %v, want %v", i, err, context.DeadlineExceeded)
			}
		}
		if err := put(t, cli, 10*time.Second); err != nil {
			t.Fatalf("Put through all members with %d blackholed: %v", i, err)
		}
		c.Unblackhole(t, i)
		if err := put(t, pinned, 10*time.Second); err != nil {
			t.Fatalf("Put after unblackhole: %v", err)
		}
	})

	t.Run("isolate", func(t *testing.T) {
		i := c.WaitLeader(t)
		pinned := c.MemberClient(t, i)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		wch := pinned.Watch(clientv3.WithRequireLeader(ctx), t.Name(), clientv3.WithCreatedNotify())
		if wr := <-wch; !wr.Created {
			t.Fatalf("first watch response = %+v, want created", wr)
		}

		start := time.Now()
		c.Isolate(t, i)
		// The member drops its leader after an election timeout and cancels
		// leader-requiring streams after three more.
		if wr := <-wch; !errors.Is(wr.Err(), rpctypes.ErrNoLeader) {
			t.Fatalf("watch on isolated member %d: err = %v, want %v", i, wr.Err(), rpctypes.ErrNoLeader)
		}
		t.Logf("watch on isolated member %d cancelled after %v", i, time.Since(start).Round(time.Millisecond))
		lead := c.WaitLeader(t)
		if lead == i {
			t.Fatalf("isolated member %d is still leader", i)
		}
		// Not through cli: a request it balances onto the isolated member
		// waits out the server's 5s request timeout.
		if err := put(t, c.MemberClient(t, lead), 10*time.Second); err != nil {
			t.Fatalf("Put with member %d isolated: %v", i, err)
		}
		c.Heal(t, i)
		c.WaitLeader(t)
		if err := put(t, pinned, 10*time.Second); err != nil {
			t.Fatalf("Put through healed member %d: %v", i, err)
		}
	})
}
