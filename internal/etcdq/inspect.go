package etcdq

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/distsync/distsync"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Inspect reads the holders and waiters of name, of whichever kind, in
// one Txn at one revision: the contenders under the name's prefix and the
// semaphore limit. It then asks the remaining TTL of each distinct session
// lease among them, once per lease. A lease whose TTL etcd refuses to tell
// (a user without read permission on some key of that lease) reports TTL 0.
//
// The kind is read from the keys: a stored limit makes a semaphore, reader
// or writer keys ("r…", "w…") an RWMutex, else a mutex or an election.
// Those two write the same keys; a candidate's value, its campaign value,
// is reported as its Identity.
func (s *Session) Inspect(ctx context.Context, name string) (distsync.Status, error) {
	q, err := s.inspected(name)
	if err != nil {
		return distsync.Status{}, err
	}
	kvs, limit, err := q.contendersNow(ctx, 0)
	if err != nil {
		return distsync.Status{}, RPCError(ctx, s.c, err, fmt.Sprintf("inspect %q", name))
	}
	st := distsync.Status{Name: name, Limit: limit}
	ttls := map[clientv3.LeaseID]time.Duration{}
	for _, kv := range kvs {
		id := clientv3.LeaseID(kv.Lease)
		if _, ok := ttls[id]; ok || id == clientv3.NoLease {
			continue
		}
		resp, err := s.c.TimeToLive(ctx, id)
		switch {
		case Denied(err):
		case err != nil:
			return distsync.Status{}, RPCError(ctx, s.c, err, fmt.Sprintf("inspect %q: lease TTL", name))
		case resp.TTL > 0:
			ttls[id] = time.Duration(resp.TTL) * time.Second
		}
	}
	for i, kv := range kvs {
		h := q.holder(kv, limit > 0)
		h.TTL = ttls[clientv3.LeaseID(kv.Lease)]
		if holds(q.prefix, kvs, i, limit) {
			st.Holders = append(st.Holders, h)
		} else {
			st.Waiters = append(st.Waiters, h)
		}
	}
	return st, nil
}

// inspected returns the queue of name for Inspect and ForceRelease: no
// acquisition, so any kind.
func (s *Session) inspected(name string) (*Queue, error) {
	if err := distsync.ValidateName(name); err != nil {
		return nil, err
	}
	if s.Closed() {
		return nil, errClosed()
	}
	return NewQueue(s, name)
}

// contendersNow reads the contenders of the queue in create-revision order
// and the stored semaphore limit (0 when none), in one Txn. With token >
// 0 it reads only the contender created at revision token.
func (q *Queue) contendersNow(ctx context.Context, token int64) ([]*mvccpb.KeyValue, int64, error) {
	start, end := contenders(q.prefix)
	opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)}
	if token > 0 {
		opts = append(opts, clientv3.WithMinCreateRev(token), clientv3.WithMaxCreateRev(token))
	}
	resp, err := q.c.Txn(ctx).Then(clientv3.OpGet(start, opts...), clientv3.OpGet(q.limitKey())).Commit()
	if err != nil {
		return nil, 0, err
	}
	kvs := filter(q.prefix, resp.Responses[0].GetResponseRange().Kvs)
	var limit int64
	if l := resp.Responses[1].GetResponseRange().Kvs; len(l) == 1 {
		limit, _ = strconv.ParseInt(string(l[0].Value), 10, 64)
	}
	return kvs, limit, nil
}

// holder describes kv, a contender, as Inspect reports it; semaphore says
// whether its value is "weight identity".
func (q *Queue) holder(kv *mvccpb.KeyValue, semaphore bool) distsync.Holder {
	h := distsync.Holder{Token: uint64(kv.CreateRevision), Identity: string(kv.Value), Mode: distsync.ModeExclusive, Weight: 1}
	switch child := kv.Key[len(q.prefix):]; {
	case semaphore:
		h.Mode, h.Weight = distsync.ModePermit, weight(kv)
		if _, id, ok := strings.Cut(h.Identity, " "); ok {
			h.Identity = id
		}
	case child[0] == 'r':
		h.Mode = distsync.ModeRead
	case child[0] == 'w':
		h.Mode = distsync.ModeWrite
	}
	return h
}

// holds reports whether kvs[i] holds, by the rule its acquisition waited
// under: for a semaphore (limit > 0), when the weights of the older keys
// plus its own fit in the limit; for a reader, when no older writer is
// left; for any other key, when it is the oldest.
func holds(prefix string, kvs []*mvccpb.KeyValue, i int, limit int64) bool {
	if limit > 0 {
		return olderWeight(kvs[:i], math.MaxInt64)+weight(kvs[i]) <= limit
	}
	if kvs[i].Key[len(prefix)] != 'r' {
		return i == 0
	}
	for _, kv := range kvs[:i] {
		if kv.Key[len(prefix)] == 'w' {
			return false
		}
	}
	return true
}

// ForceRelease deletes the contender of name created at revision token,
// if it still is, and leaves the marker that tells its holder why (see
// forced.go). The next waiter is served by the deletion. A semaphore's
// limit goes with its last key. It fails with ErrNotFound when no
// contender has token, else as Inspect does.
func (s *Session) ForceRelease(ctx context.Context, name string, token uint64) error {
	q, err := s.inspected(name)
	if err != nil {
		return err
	}
	notFound := distsync.Errorf(distsync.ErrNotFound, nil, "%q has no holder or waiter with token %d", name, token)
	if token == 0 || token > math.MaxInt64 {
		return notFound
	}
	rev := int64(token)
	for attempt := 0; ; attempt++ {
		kvs, limit, err := q.contendersNow(ctx, rev)
		if err != nil {
			return RPCError(ctx, s.c, err, fmt.Sprintf("force release %q: read", name))
		}
		if len(kvs) == 0 {
			return notFound
		}
		kv := kvs[0]
		key := string(kv.Key)
		ops := []clientv3.Op{clientv3.OpDelete(key)}
		if kv.Lease != int64(clientv3.NoLease) {
			// On the holder's lease: it ends with the holder, if nobody
			// reads it first.
			ops = append(ops, clientv3.OpPut(forcedKey(key), s.Identity(), clientv3.WithLease(clientv3.LeaseID(kv.Lease))))
		}
		resp, err := s.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).Then(ops...).Commit()
		switch {
		case isLeaseGone(err) && attempt == 0:
			continue // the holder's lease just ended; its key with it
		case err != nil:
			return RPCError(ctx, s.c, err, fmt.Sprintf("force release %q", name))
		case !resp.Succeeded:
			return notFound
		}
		h := q.holder(kv, limit > 0)
		s.Recorder().Warn(ctx, "force release", slog.String("name", name), slog.Uint64("token", token),
			slog.String("identity", h.Identity), slog.String("mode", string(h.Mode)), slog.String("key", key))
		if limit > 0 {
			// The limit is stored while the semaphore is in use only;
			// left behind, the next user stores its own.
			_ = q.dropIdleLimit(ctx)
		}
		return nil
	}
}
