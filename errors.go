package distsync

import (
	"errors"
	"fmt"
)

// The sentinel errors of the contract. Every error returned by a distsync
// primitive wraps exactly one of them (plus the backend's error and, when a
// context ended, the context's error); test with errors.Is.
var (
	// ErrWouldBlock is returned by the Try* calls when the primitive is
	// held elsewhere.
	ErrWouldBlock = errors.New("distsync: would block")

	// ErrNotAcquired is returned, joined with ctx.Err(), when the context
	// of an acquire call ended before the acquisition completed. Nothing is
	// left behind.
	ErrNotAcquired = errors.New("distsync: not acquired")

	// ErrLost means a lease ended without Release: its session expired or
	// was revoked, its backend state was deleted, or renewal could not be
	// confirmed in time. Someone else may hold it now.
	ErrLost = errors.New("distsync: lease lost")

	// ErrReleased is the Err of a lease after Release.
	ErrReleased = errors.New("distsync: lease released")

	// ErrInvalidName is returned by constructors for a name that breaks the
	// name rules (see ValidateName) or that the backend cannot store.
	ErrInvalidName = errors.New("distsync: invalid name")

	// ErrInvalidConfig is returned for an option out of range (a TTL below
	// the backend's minimum, a nil client, a semaphore limit below 1, ...).
	// Like ErrDenied it is never retried.
	ErrInvalidConfig = errors.New("distsync: invalid configuration")

	// ErrLimitMismatch is returned when a semaphore is opened with a limit
	// that differs from the one stored with it.
	ErrLimitMismatch = errors.New("distsync: semaphore limit mismatch")

	// ErrNoLeader is returned by Election.Leader when nobody leads.
	ErrNoLeader = errors.New("distsync: no leader")

	// ErrClosed is returned by calls on a primitive (or its session) that
	// was closed.
	ErrClosed = errors.New("distsync: closed")

	// ErrUnavailable wraps a backend failure that may pass: the server
	// could not be reached, had no quorum, or answered with an error.
	// Blocking calls retry it within their context.
	ErrUnavailable = errors.New("distsync: backend unavailable")

	// ErrDenied wraps a failure that does not pass by retrying: the backend
	// refused the credentials or the permission (etcd "permission denied",
	// Redis NOPERM or WRONGPASS, ZooKeeper "not authenticated"), or cannot
	// run what distsync needs (a Redis server without scripting). It is
	// returned at once and never retried, by the blocking calls, by Run or
	// in the background.
	ErrDenied = errors.New("distsync: denied")

	// ErrNotFound is returned by ForceRelease when no holder or waiter of
	// the name has the given token (it has gone already, or never was).
	ErrNotFound = errors.New("distsync: not found")
)

// Errorf returns an error wrapping sentinel and, if non-nil, cause, with
// msg (formatted with args) in between: "distsync: lease lost: key deleted:
// cause". Backends use it so that errors.Is finds both the sentinel and
// the cause.
func Errorf(sentinel, cause error, msg string, args ...any) error {
	m := fmt.Sprintf(msg, args...)
	switch {
	case cause == nil && m == "":
		return sentinel
	case cause == nil:
		return fmt.Errorf("%w: %s", sentinel, m)
	case m == "":
		return fmt.Errorf("%w: %w", sentinel, cause)
	default:
		return fmt.Errorf("%w: %s: %w", sentinel, m, cause)
	}
}
