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
// exclude each other and a key names exactly one acquisition.
func newKey(prefix string, lease clientv3.LeaseID) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return fmt.Sprintf("%s%x_%016x", prefix, int64(lease), binary.BigEndian.Uint64(b[:]))
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
