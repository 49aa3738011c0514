package etcdq

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/distsync/distsync"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// deniedErrs are etcd's answers that retrying cannot change: the user or
// its role lacks the permission, or the credentials were refused.
var deniedErrs = []error{
	rpctypes.ErrPermissionDenied,
	rpctypes.ErrAuthFailed,
	rpctypes.ErrInvalidAuthToken,
	rpctypes.ErrUserEmpty,
	rpctypes.ErrUserNotFound,
	rpctypes.ErrRoleNotGranted,
	rpctypes.ErrRoleNotFound,
}

// Denied reports whether err is a permission or authentication failure of
// etcd. It is the one place that decides it: such an error maps to
// distsync.ErrDenied and is never retried, by a wait, a cleanup, an
// observer or the keep-alive.
func Denied(err error) bool {
	if err == nil {
		return false
	}
	for _, d := range deniedErrs {
		if errors.Is(err, d) {
			return true
		}
	}
	// The same errors as gRPC statuses, before clientv3 typed them (a
	// watch's cancel reason, a stream's error), or as typed values
	// compared by their description.
	desc := ""
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		desc = ee.Error()
	} else if st, ok := status.FromError(err); ok {
		if st.Code() == codes.PermissionDenied || st.Code() == codes.Unauthenticated {
			return true
		}
		desc = st.Message()
	} else {
		desc = err.Error() // a watch's cancel reason, as plain text
	}
	// A watch that etcd cancelled carries the refusal in its cancel
	// reason, which clientv3 hands on as text.
	for _, d := range deniedErrs {
		if desc != "" && strings.Contains(desc, d.Error()) {
			return true
		}
	}
	return false
}

// Flat returns an error with err's message that wraps nothing, for an
// error that already wraps a sentinel and becomes the detail of another:
// every error of the contract wraps exactly one sentinel.
func Flat(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(err.Error())
}

// RPCError turns the error of a request of client c made for op, by a
// call that acquires nothing (Leader, Proclaim, SetLimit, a grant), into a
// contract error: ErrDenied, ErrUnavailable joined with the context's cause
// when ctx ended, ErrClosed when c was closed, else ErrUnavailable.
func RPCError(ctx context.Context, c *clientv3.Client, err error, op string) error {
	switch {
	case Denied(err):
		return distsync.Errorf(distsync.ErrDenied, err, "%s", op)
	case ctx.Err() != nil:
		return distsync.Errorf(distsync.ErrUnavailable, errors.Join(context.Cause(ctx), err), "%s", op)
	case c.Ctx().Err() != nil:
		return distsync.Errorf(distsync.ErrClosed, err, "%s: etcd client closed", op)
	default:
		return distsync.Errorf(distsync.ErrUnavailable, err, "%s", op)
	}
}

// fail turns the error of an acquisition's request into a contract error.
func (q *Queue) fail(ctx context.Context, err error, op string) error {
	op = fmt.Sprintf("%q: %s", q.name, op) // the user's name, not a key
	switch {
	case Denied(err):
		return distsync.Errorf(distsync.ErrDenied, err, "%s", op)
	case ctx.Err() != nil:
		return distsync.Errorf(distsync.ErrNotAcquired, errors.Join(context.Cause(ctx), err), "%s", op)
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return distsync.Lost(distsync.LossSessionEnded, err, "%s: session lease expired", op)
	case q.src.c.Ctx().Err() != nil:
		return distsync.Errorf(distsync.ErrClosed, err, "%s: etcd client closed", op)
	default:
		return distsync.Errorf(distsync.ErrUnavailable, err, "%s", op)
	}
}
