package etcdq

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Prefix returns the key prefix of name: the name with '%' and '/'
// percent-encoded, then "/". Encoding makes the prefixes of two different
// names disjoint ("a/" never contains the keys of "a/b", which live under
// "a%2Fb/"), and leaves plain names as they are, so that the layout is that
// of etcd's concurrency.Mutex and `etcdctl lock NAME`.
func Prefix(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '%':
			b.WriteString("%25")
		case '/':
			b.WriteString("%2F")
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('/')
	return b.String()
}

// abandonedPrefix holds tombstones of enqueue requests whose outcome was
// unknown. No escaped name starts with "%a", so no name's prefix covers it.
const abandonedPrefix = "%abandoned/"

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
// the cleanup writes the tombstone and every enqueue checks it.
func tombstone(key string) string { return abandonedPrefix + key }
