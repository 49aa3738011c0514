package distsync_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/distsync/distsync"
)

// Work under a context that ends when the lease does: here the lease is
// lost while the work runs, and the work sees why.
func ExampleLeaseContext() {
	lease := newTestLease() // any distsync.Lease, e.g. from mutex.Lock
	ctx, cancel := distsync.LeaseContext(context.Background(), lease)
	defer cancel()

	lease.end(distsync.Errorf(distsync.ErrLost, nil, "session expired"))
	<-ctx.Done()
	fmt.Println(context.Cause(ctx))
	fmt.Println(errors.Is(context.Cause(ctx), distsync.ErrLost))
	// Output:
	// distsync: lease lost: session expired
	// true
}

// Names are checked by every constructor with the same rules.
func ExampleValidateName() {
	fmt.Println(distsync.ValidateName("jobs/nightly-report"))
	fmt.Println(distsync.ValidateName(""))
	// Output:
	// <nil>
	// distsync: invalid name: empty name
}

// An Elector runs the leader's work while it leads, and answers IsLeader
// and Healthz without a round trip. Any Election works; a real one comes
// from a Session (s.Election("billing-leader")).
func ExampleElector() {
	e := newMemElection() // any distsync.Election; this one is in memory
	ctx, cancel := context.WithCancel(context.Background())
	var el *distsync.Elector
	el = &distsync.Elector{
		Election: e,
		Value:    []byte("pod-7"),
		Identity: "pod-7",
		Callbacks: distsync.Callbacks{
			OnStartedLeading: func(ctx context.Context, l distsync.Leadership) {
				fmt.Println("leading, term", l.Token(), "IsLeader", el.IsLeader())
				cancel() // the work is done: shut down
				<-ctx.Done()
			},
			OnStoppedLeading: func() { fmt.Println("stopped leading") },
		},
	}
	// A liveness probe: http.Handle("/healthz", el.Healthz(10*time.Second))
	err := el.Run(ctx)
	fmt.Println("Run:", err, "IsLeader", el.IsLeader())
	// Output:
	// leading, term 1 IsLeader true
	// stopped leading
	// Run: <nil> IsLeader false
}
