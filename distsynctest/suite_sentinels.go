package distsynctest

import (
	"errors"

	"github.com/distsync/distsync"
)

// contractSentinels are the contract's sentinel errors, in the order of
// distsync's errors.go.
var contractSentinels = []error{
	distsync.ErrWouldBlock, distsync.ErrNotAcquired, distsync.ErrLost, distsync.ErrReleased,
	distsync.ErrInvalidName, distsync.ErrInvalidConfig, distsync.ErrLimitMismatch, distsync.ErrNoLeader,
	distsync.ErrClosed, distsync.ErrUnavailable, distsync.ErrDenied, distsync.ErrNotFound,
}

// Sentinels returns the sentinel errors of distsync's contract that err
// wraps, in the order errors.go declares them: ErrWouldBlock first,
// ErrNotFound last. It returns nil for a nil err.
//
// The contract says that every error of a distsync call wraps exactly one
// sentinel. A test checks it with len(Sentinels(err)) == 1; TestSession
// does so for every error it sees.
func Sentinels(err error) []error {
	var out []error
	for _, s := range contractSentinels {
		if errors.Is(err, s) {
			out = append(out, s)
		}
	}
	return out
}
