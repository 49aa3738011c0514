package leaseend

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/distsync/distsync/internal/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

func TestEndsOnceWithTheFirstReason(t *testing.T) {
	var e End
	if e.Err() != nil {
		t.Fatal("Err before the end")
	}
	select {
	case <-e.Done():
		t.Fatal("Done closed before the end")
	default:
	}
	first, second := errors.New("lost"), errors.New("released")
	var wg sync.WaitGroup
	var wins sync.Map
	for i, err := range []error{first, second, first, second} {
		wg.Go(func() {
			if e.Set(err) {
				wins.Store(i, err)
			}
		})
	}
	wg.Wait()
	n := 0
	wins.Range(func(_, v any) bool {
		n++
		if v != e.Err() {
			t.Errorf("the winning Set(%v) is not Err %v", v, e.Err())
		}
		return true
	})
	if n != 1 {
		t.Fatalf("%d Set calls ended the lease, want 1", n)
	}
	<-e.Done()
}

func TestLifecycleRelease(t *testing.T) {
	var c Lifecycle
	var order []string
	removeErr := errors.New("not confirmed")
	remove := func(context.Context) error { order = append(order, "remove"); return removeErr }
	stop := func() {
		order = append(order, "stop")
		// The follower sees the release itself; it must not end the
		// lease as lost.
		if c.Lose(errors.New("lost")) {
			t.Error("Lose during Release ended the lease")
		}
	}
	released := errors.New("released")
	if err := c.Release(context.Background(), released, remove, stop); err != removeErr {
		t.Fatalf("Release = %v, want remove's error", err)
	}
	if got := strings.Join(order, ","); got != "remove,stop" {
		t.Fatalf("order %s, want remove,stop", got)
	}
	if c.Err() != released {
		t.Fatalf("Err = %v, want the final error", c.Err())
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done open after Release")
	}
	// Idempotent: the first result, nothing run again.
	if err := c.Release(context.Background(), errors.New("other"), remove, stop); err != removeErr || len(order) != 2 {
		t.Fatalf("second Release = %v after %v", err, order)
	}
}

func TestLifecycleReleaseAfterLoss(t *testing.T) {
	var c Lifecycle
	lost := errors.New("lost")
	if !c.Lose(lost) {
		t.Fatal("Lose before Release did not end the lease")
	}
	err := c.Release(context.Background(), errors.New("released"),
		func(context.Context) error { return errors.New("gone") }, func() {})
	if err != nil {
		t.Fatalf("Release of a lost lease = %v, want nil (nothing to confirm)", err)
	}
	if c.Err() != lost {
		t.Fatalf("Err = %v, want the loss kept", c.Err())
	}
}
