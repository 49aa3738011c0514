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
