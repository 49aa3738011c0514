package zksync

import (
	"context"
	"errors"

	"github.com/distsync/distsync"
	"github.com/go-zookeeper/zk"
)

// How go-zookeeper's errors become the contract's: every error a call
// returns wraps exactly one sentinel (classify). A connection loss is
// retried within the caller's context (connLost); a refusal or a
// misconfiguration never is (permanent), not by waits, not by background
// cleanup, not by observers.

// sentinels are the contract's sentinel errors.
var sentinels = []error{
	distsync.ErrWouldBlock, distsync.ErrNotAcquired, distsync.ErrLost, distsync.ErrReleased,
	distsync.ErrInvalidName, distsync.ErrInvalidConfig, distsync.ErrLimitMismatch, distsync.ErrNoLeader,
	distsync.ErrClosed, distsync.ErrUnavailable, distsync.ErrDenied, distsync.ErrNotFound,
}

// contractErr reports whether err already wraps a sentinel.
func contractErr(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// detail returns err for wrapping under another sentinel: err itself, or
// only its text when it wraps a sentinel already (an error wraps exactly
// one).
func detail(err error) error {
	if err == nil || !contractErr(err) {
		return err
	}
	return errors.New(err.Error())
}

// connLost reports whether err means the request's outcome is unknown or
// it was not sent because the connection is down: worth retrying once the
// connection is back.
func connLost(err error) bool {
	return errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) ||
		errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, zk.ErrSessionMoved)
}

// denied reports whether ZooKeeper refused the credentials or the
// permission.
func denied(err error) bool {
	return errors.Is(err, zk.ErrNoAuth) || errors.Is(err, zk.ErrAuthFailed) || errors.Is(err, distsync.ErrDenied)
}

// misconfigured reports whether a request failed because of how the
// Session was configured: an ACL the server rejects, a root under an
// ephemeral node, or a request the server does not take.
func misconfigured(err error) bool {
	return errors.Is(err, zk.ErrInvalidACL) || errors.Is(err, zk.ErrBadArguments) ||
		errors.Is(err, zk.ErrInvalidFlags) || errors.Is(err, zk.ErrNoChildrenForEphemerals) ||
		errors.Is(err, distsync.ErrInvalidConfig)
}

// permanent reports whether err never passes by retrying.
func permanent(err error) bool { return denied(err) || misconfigured(err) }

// classify turns the error of operation op into a contract error: one that
// already is passes through; a refusal is ErrDenied and a misconfiguration
// ErrInvalidConfig; when ctx has ended it is onCtx joined with ctx's cause;
// on a closed Session ErrClosed; else ErrUnavailable.
func (s *Session) classify(ctx context.Context, err error, onCtx error, op string) error {
	switch {
	case ctx.Err() != nil:
		return distsync.Errorf(onCtx, errors.Join(context.Cause(ctx), detail(ignoreCtx(ctx, err))), "%s", op)
	case contractErr(err):
		return err
	case denied(err):
		return distsync.Errorf(distsync.ErrDenied, err, "%s", op)
	case misconfigured(err):
		return distsync.Errorf(distsync.ErrInvalidConfig, err, "%s", op)
	case errors.Is(err, zk.ErrClosing), s.usable() != nil && errors.Is(s.usable(), distsync.ErrClosed):
		return distsync.Errorf(distsync.ErrClosed, err, "%s", op)
	}
	return distsync.Errorf(distsync.ErrUnavailable, err, "%s", op)
}

// ignoreCtx drops err when it is ctx's own error, so it is not joined twice.
func ignoreCtx(ctx context.Context, err error) error {
	if err == context.Cause(ctx) || err == ctx.Err() {
		return nil
	}
	return err
}
