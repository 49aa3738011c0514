package distsync

import "errors"

// A LossReason says why a lease was lost. LostReason reads it from a
// lease's Err; metrics and logs carry it as the reason of a loss.
type LossReason string

// The reasons a lease is lost.
const (
	// LossSessionEnded: the backend session underneath ended (an etcd
	// lease expired or was revoked, a ZooKeeper session expired) or the
	// Session was closed.
	LossSessionEnded LossReason = "session_ended"

	// LossRenewal: the lease's renewal was refused or not confirmed in
	// time, so the backend may hand it on.
	LossRenewal LossReason = "renewal_failed"

	// LossDisconnected: the connection to the backend was lost for longer
	// than ownership can be trusted (ZooKeeper's disconnect grace).
	LossDisconnected LossReason = "disconnected"

	// LossDeleted: the lease's backend state was deleted or overwritten by
	// someone else, not through ForceRelease.
	LossDeleted LossReason = "deleted"

	// LossForceReleased: an operator released the lease on purpose with
	// a Session's ForceRelease.
	LossForceReleased LossReason = "force_released"

	// LossOther: any other loss.
	LossOther LossReason = "other"
)

// Lost returns an error wrapping ErrLost and cause (if non-nil), as
// Errorf does, that LostReason reports as reason.
func Lost(reason LossReason, cause error, msg string, args ...any) error {
	return &lostError{reason: reason, err: Errorf(ErrLost, cause, msg, args...)}
}

// LostReason returns why the lease whose Err is err was lost: "" when err
// does not wrap ErrLost, LossOther when no reason was recorded.
func LostReason(err error) LossReason {
	if !errors.Is(err, ErrLost) {
		return ""
	}
	var l *lostError
	if errors.As(err, &l) {
		return l.reason
	}
	return LossOther
}

type lostError struct {
	reason LossReason
	err    error
}

func (e *lostError) Error() string { return e.err.Error() }
func (e *lostError) Unwrap() error { return e.err }
