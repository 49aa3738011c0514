package redisq

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distsync/distsync"
)

// Inspect reads who holds and who waits for name, in one script
// (inspect.lua): an atomic snapshot after reclaiming expired members. A
// waiter's Token is its arrival number, from the counter that issues the
// fencing tokens: it is unique among the name's holders and waiters, and
// the token the waiter's lease gets when granted is greater. Since is when
// the member arrived, by the server's clock; TTL is how long the server
// keeps it unless it is renewed.
func (s *Session) Inspect(ctx context.Context, name string) (distsync.Status, error) {
	if err := distsync.ValidateName(name); err != nil {
		return distsync.Status{}, err
	}
	if s.Closed() {
		return distsync.Status{}, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	k := s.Keys(name)
	v, err := call(ctx, func(ctx context.Context) ([]any, error) {
		return inspectScript.Run(ctx, s.c, k.list(), args(k, "", 0, histLook)...).Slice()
	})
	if err != nil {
		return distsync.Status{}, failure(err, "inspect %q", name)
	}
	st, err := decodeStatus(name, v)
	if err != nil {
		return distsync.Status{}, distsync.Errorf(distsync.ErrUnavailable, err, "inspect %q", name)
	}
	return st, nil
}

// decodeStatus decodes inspect.lua's reply.
func decodeStatus(name string, v []any) (distsync.Status, error) {
	const head, per = 4, 6
	if len(v) < head {
		return distsync.Status{}, fmt.Errorf("redisq: malformed inspect reply %v", v)
	}
	now, _ := v[0].(int64)
	limit, _ := v[1].(int64)
	election, _ := v[2].(int64)
	nh, _ := v[3].(int64)
	rest := v[head:]
	if len(rest)%per != 0 || nh < 0 || int(nh)*per > len(rest) {
		return distsync.Status{}, fmt.Errorf("redisq: malformed inspect reply %v", v)
	}
	st := distsync.Status{Name: name, Limit: limit}
	if election == 1 {
		st.Limit = 0
	}
	// Members written before modes were recorded get theirs from their
	// kind: shared members are readers unless a limit is stored.
	shared := distsync.ModeRead
	if limit > 0 {
		shared = distsync.ModePermit
	}
	for i := 0; i+per <= len(rest); i += per {
		f := rest[i : i+per]
		m := toString(f[0])
		expiry, _ := f[1].(int64)
		token, _ := f[2].(int64)
		since, _ := f[4].(int64)
		h := distsync.Holder{
			Token:    uint64(token),
			Identity: toString(f[3]),
			Mode:     distsync.Mode(toString(f[5])),
			Weight:   memberWeight(m),
		}
		if h.Mode == "" {
			h.Mode = distsync.ModeExclusive
			if strings.HasPrefix(m, string(Shared)) {
				h.Mode = shared
			}
		}
		if since > 0 {
			h.Since = time.UnixMilli(since)
		}
		if expiry > now {
			h.TTL = time.Duration(expiry-now) * time.Millisecond
		}
		if i/per < int(nh) {
			st.Holders = append(st.Holders, h)
		} else {
			st.Waiters = append(st.Waiters, h)
		}
	}
	// The holders set is ordered by expiry: put them in grant order.
	slices.SortStableFunc(st.Holders, func(a, b distsync.Holder) int { return cmp.Compare(a.Token, b.Token) })
	return st, nil
}

// memberWeight reads the weight of member m ("<kind>|<ttl>|<weight>|...").
func memberWeight(m string) int64 {
	f := strings.SplitN(m, "|", 4)
	if len(f) < 3 {
		return 1
	}
	w, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || w < 1 {
		return 1
	}
	return w
}

// ForceRelease deletes the holder of name whose fencing token is token,
// or the waiter whose arrival number is token (see Inspect), in one script
// (force.lua) that compares the token, so it never deletes a later
// holder. The waiters that now fit are granted at once. The owner is told
// through a record under the name's hash tag that expires within the
// member's TTL: a holder's next renewal (within TTL/3) finds it, and its
// lease ends with ErrLost (LossForceReleased); a waiter is woken at once
// to re-check, and its acquisition fails the same way. It is logged at
// Warn. It fails with ErrNotFound when nobody has token.
func (s *Session) ForceRelease(ctx context.Context, name string, token uint64) error {
	if err := distsync.ValidateName(name); err != nil {
		return err
	}
	if s.Closed() {
		return distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	k := s.Keys(name)
	tok := strconv.FormatUint(token, 10)
	r, err := call(ctx, func(ctx context.Context) (result, error) {
		v, err := forceScript.Run(ctx, s.c, k.list(), args(k, "", 0, histLook, tok)...).Slice()
		if err != nil {
			return result{}, err
		}
		return decode(v)
	})
	if err != nil {
		return failure(err, "force release of %q", name)
	}
	if r.status == 0 || len(r.extra) < 2 {
		return distsync.Errorf(distsync.ErrNotFound, nil, "no holder or waiter of %q has token %d", name, token)
	}
	if s.rec.Enabled(ctx, slog.LevelWarn) {
		role := "holder"
		if r.status == 2 {
			role = "waiter"
		}
		s.rec.Warn(ctx, "force release", slog.String("name", name), slog.Uint64("token", token),
			slog.String("identity", toString(r.extra[1])), slog.String("role", role),
			slog.String("member", toString(r.extra[0])), slog.String("by", s.identity))
	}
	return nil
}
