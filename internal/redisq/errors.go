package redisq

import (
	"errors"
	"strings"

	"github.com/distsync/distsync"
	"github.com/redis/go-redis/v9"
)

// isDenied reports whether err is Redis refusing us for good: an ACL
// without our command, key or channel (NOPERM, or the message a script
// gets for the keys and channels it touches), a missing or wrong
// password (NOAUTH, WRONGPASS), or a server that cannot run our scripts
// (EVALSHA or SCRIPT renamed away). Retrying does not help; an operator
// must.
func isDenied(err error) bool {
	var re redis.Error
	if err == nil || !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	for _, p := range []string{"NOPERM", "NOAUTH", "WRONGPASS"} {
		if redis.HasErrorPrefix(re, p) {
			return true
		}
	}
	lower := strings.ToLower(msg)
	switch {
	case strings.Contains(lower, "user executing the script can't"):
		// Redis 7 reports an ACL refusal inside a script this way:
		// "can't access at least one of the keys", "can't publish to
		// the channel".
		return true
	case strings.Contains(lower, "unknown command") &&
		(strings.Contains(lower, "eval") || strings.Contains(lower, "script")):
		return true
	case strings.Contains(lower, "scripts are disabled") || strings.Contains(lower, "scripting is disabled"):
		return true
	}
	return false
}

// failure wraps err, a failed request to Redis, with ErrDenied when Redis
// refused us for good (see isDenied), else with ErrUnavailable.
func failure(err error, msg string, args ...any) error {
	if isDenied(err) {
		return distsync.Errorf(distsync.ErrDenied, err, msg, args...)
	}
	return distsync.Errorf(distsync.ErrUnavailable, err, msg, args...)
}

// Why a member is gone, as the scripts report it (gone() in common.lua).
const (
	goneDeleted int64 = 0 // deleted from outside, or expired and reclaimed earlier
	goneExpired int64 = 1 // expired: its renewals did not get through in time
	goneForced  int64 = 2 // removed by ForceRelease
)

// goneError is the loss of what (a lease, a waiter) of name, whose member
// Redis reported gone for why.
func goneError(why int64, what, name string) error {
	switch why {
	case goneForced:
		return distsync.Lost(distsync.LossForceReleased, nil, "%s of %q released by an operator (ForceRelease)", what, name)
	case goneExpired:
		return distsync.Lost(distsync.LossRenewal, nil, "%s of %q expired on redis before it was renewed", what, name)
	}
	return distsync.Lost(distsync.LossDeleted, nil, "%s of %q gone from redis (deleted, or expired)", what, name)
}
