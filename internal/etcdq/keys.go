package etcdq

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Prefix returns the key prefix of name: the name itself, then "/", as
// etcd's concurrency.Mutex and `etcdctl lock NAME` have it.
//
// The keys of a name that take part in its queue (holders, waiters,
// candidates) are the direct children of the prefix: no '/' follows it.
// A name considers only those, so "a" and "a/b" never interfere although
// the keys of "a/b" lie under "a/". Every other key of the name (the
// semaphore limit, tombstones) starts with a control byte after the
// prefix. No valid name contains one, so no other name owns such a key.
func Prefix(name string) string { return name + "/" }

// ctl starts every key under a prefix that is not a contender.
const ctl = "\x00"

// abandoned is the child of a prefix under which its tombstones live.
const abandoned = ctl + "abandoned/"

// contenders is the part of prefix's range that holds no control keys:
// from prefix+"\x01" to the end of the prefix's range.
func contenders(prefix string) (string, string) {
	return prefix + "\x01", clientv3.GetPrefixRangeEnd(prefix)
}

// isContender reports whether key, under prefix, is a direct child of it
// and no control key.
func isContender(prefix string, key []byte) bool {
	if len(key) <= len(prefix) || string(key[:len(prefix)]) != prefix {
		return false
	}
	rest := key[len(prefix):]
	return rest[0] != ctl[0] && !strings.Contains(string(rest), "/")
}

// filter returns the contenders of prefix among kvs, in their order.
func filter(prefix string, kvs []*mvccpb.KeyValue) []*mvccpb.KeyValue {
	out := kvs[:0:0]
	for _, kv := range kvs {
		if isContender(prefix, kv.Key) {
			out = append(out, kv)
		}
	}
	return out
}

// newKey returns a fresh waiter key under prefix for lease. The lease ID
// comes first (as in etcd's concurrency.Mutex) and a random suffix makes
// every acquisition distinct, so two acquisitions through one session
// exclude each other and a key names one acquisition at a time (a key
// released cleanly may name a later one, see takeKey).
func newKey(prefix string, lease clientv3.LeaseID) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return fmt.Sprintf("%s%x_%016x", prefix, int64(lease), binary.BigEndian.Uint64(b[:]))
}

// keyPrefixOf returns the prefix newKey made key under for lease.
func keyPrefixOf(key string, lease clientv3.LeaseID) string {
	return key[:len(key)-len(fmt.Sprintf("%x_%016x", int64(lease), 0))]
}

// tombstone is the key whose existence forbids key from ever being created:
// an enqueue Txn that the client gave up on can still be applied later, so
// the cleanup writes the tombstone and every enqueue checks it. It lives
// under the same prefix as key: "N/\x00abandoned/<child>".
func tombstone(key string) string {
	i := strings.LastIndexByte(key, '/')
	return key[:i+1] + abandoned + key[i+1:]
}

// pageSize is how many keys one read of a scan returns.
const pageSize = 64

// Scan is scan for other packages of the module: the first contender of
// prefix under prefix in create-revision order (the oldest unless desc),
// or nil.
func Scan(ctx context.Context, c *clientv3.Client, prefix string, desc bool, rev int64) (*mvccpb.KeyValue, error) {
	return scan(ctx, c, prefix, prefix, desc, 0, rev, nil)
}

// IsContender reports whether key is a holder, waiter or candidate key of
// the name whose prefix is prefix: a direct child that is no control key.
func IsContender(prefix string, key []byte) bool { return isContender(prefix, key) }

// Contenders lists the keys of name's holders, waiters and candidates
// under the Session's prefix, read under ctx: what the test kit counts to
// see that nothing of name was left behind.
func (s *Session) Contenders(ctx context.Context, name string) ([]string, error) {
	prefix := s.keyPrefix + Prefix(name)
	from, end := contenders(prefix)
	resp, err := s.c.Get(ctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, kv := range filter(prefix, resp.Kvs) {
		keys = append(keys, string(kv.Key))
	}
	return keys, nil
}

// scan returns the first contender of prefix among the keys under wait (a
// prefix starting with prefix) in create-revision order, descending with
// desc, that was created at most at maxRev (0: any). It reads at revision
// rev (0: the newest). Deeper keys (those of other names) and control keys
// are skipped, page by page: a read with a limit may return only those.
// first is the first page when the caller read it already, else nil.
func scan(ctx context.Context, c *clientv3.Client, prefix, wait string, desc bool, maxRev, rev int64, first *etcdserverpb.RangeResponse) (*mvccpb.KeyValue, error) {
	kvs, err := scanN(ctx, c, prefix, wait, desc, maxRev, rev, first, 1)
	if err != nil || len(kvs) == 0 {
		return nil, err
	}
	return kvs[0], nil
}

// scanN is scan for the first n contenders: fewer when there are no more.
func scanN(ctx context.Context, c *clientv3.Client, prefix, wait string, desc bool, maxRev, rev int64, first *etcdserverpb.RangeResponse, n int) ([]*mvccpb.KeyValue, error) {
	order := clientv3.SortAscend
	if desc {
		order = clientv3.SortDescend
	}
	var (
		minRev int64
		found  []*mvccpb.KeyValue
	)
	page := first
	for {
		if page != nil {
			for _, kv := range page.Kvs {
				if (maxRev == 0 || kv.CreateRevision <= maxRev) && isContender(prefix, kv.Key) {
					if found = append(found, kv); len(found) == n {
						return found, nil
					}
				}
			}
			if !page.More || len(page.Kvs) == 0 {
				return found, nil
			}
			last := page.Kvs[len(page.Kvs)-1].CreateRevision
			if desc {
				maxRev = last - 1
			} else {
				minRev = last + 1
			}
		}
		opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, order), clientv3.WithLimit(pageSize)}
		if maxRev > 0 {
			opts = append(opts, clientv3.WithMaxCreateRev(maxRev))
		}
		if minRev > 0 {
			opts = append(opts, clientv3.WithMinCreateRev(minRev))
		}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := c.Get(ctx, wait, opts...)
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		page = (*etcdserverpb.RangeResponse)(resp)
	}
}

// Tombstone is tombstone for tests: the key that forbids key.
func Tombstone(key string) string { return tombstone(key) }

// spareKeys is how many released keys a Queue keeps for reuse.
const spareKeys = 4

// A spareKey is a key released cleanly on a Queue: deleted by its own
// Release, on the lease it was created on, under prefix (the queue's
// prefix and the class's Sub).
type spareKey struct {
	key, prefix string
	e           *epoch
}

// takeKey returns a key under prefix for an acquisition on e: one that an
// earlier acquisition of the queue on the same lease released cleanly, or
// else a fresh one. Reusing key names matters to the etcd server: a
// deleted key stays in its index until the next compaction, and every read
// of the name's range (each enqueue and check) walks past it, so a fresh
// key per acquisition makes a busy name slower with every acquisition
// (measured on one member, paired: +0.14 ms per Lock+Release over 1200 of
// them). A reused name is safe: holders and waiters tell keys apart by
// create revision (Release, IsOwner, the queue order and the fencing
// token), and a key is reused only once its deletion by its own Release
// was confirmed and its Lease stopped following it. Abandoned keys
// (tombstoned), force-released ones and those whose removal failed are
// never reused.
func (q *Queue) takeKey(prefix string, e *epoch) string {
	q.spareMu.Lock()
	defer q.spareMu.Unlock()
	for i := len(q.spare) - 1; i >= 0; i-- {
		if k := q.spare[i]; k.e == e && k.prefix == prefix {
			q.spare = append(q.spare[:i], q.spare[i+1:]...)
			return k.key
		}
	}
	return newKey(prefix, e.id)
}

// spareKey keeps key, released cleanly, for a later acquisition on e;
// keys of other leases go.
func (q *Queue) spareKey(key, prefix string, e *epoch) {
	q.spareMu.Lock()
	defer q.spareMu.Unlock()
	kept := q.spare[:0]
	for _, k := range q.spare {
		if k.e == e {
			kept = append(kept, k)
		}
	}
	q.spare = kept
	if len(q.spare) < spareKeys && e.ctx.Err() == nil {
		q.spare = append(q.spare, spareKey{key: key, prefix: prefix, e: e})
	}
}
