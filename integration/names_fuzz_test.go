package integration

import (
	"strings"
	"testing"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/internal/redisq"
)

// FuzzNamesDisjoint checks P5 on every backend's encoding: two different
// valid names never share state. On etcd names are raw and a name's
// contenders are the direct children of "name/" that do not start with a
// NUL byte: no key of one name (holder, reader, writer, limit, tombstone)
// is a contender of the other, its control keys are no contenders of
// either, and the two never share a control key. On Redis every key of a name carries the same
// hash tag, the tags of two names differ, and no key is shared. On
// ZooKeeper each name is one storable path segment under the root, and
// two names never get the same one. `go test` runs the seeds; run
// `go test -run '^$' -fuzz FuzzNamesDisjoint -fuzztime 20s ./integration/`
// to search further.
func FuzzNamesDisjoint(f *testing.F) {
	for _, seed := range [][2]string{
		{"a", "a/b"}, {"a/", "a"}, {"a/b", "a%2Fb"}, {"a%", "a%25"}, {"a%2F", "a/"},
		{"%", "%25"}, {"/", "%2F"}, {"a", "a "}, {"lock", "lock/x"}, {"x%limit", "x"},
		{"abandoned", "%abandoned"}, {"{a}", "%7Ba%7D"}, {"a}b", "a"}, {"{", "}"}, {"{}", "%7B%7D"},
		{"a{b}c", "b"}, {".", ".."}, {".a", "%2Ea"}, {"..", "%2E."}, {"é", "%C3%A9"},
		{"\U0001F600", "%F0%9F%98%80"}, {"\uE000", "%EE%80%80"}, {"\uFFF0", "\uFFEF"},
		{"a/", "a//b"}, {"a/b", "a/b/c"}, {"a", "a/"}, {"a//b", "a/b"}, {"a%b", "a%b/c"}, {"%", "%/%"},
		{"a\u00a0b", "a b"}, {"Ω", "Ω"}, {strings.Repeat("x", distsync.MaxNameLen), strings.Repeat("x", distsync.MaxNameLen-1)},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if a == b || distsync.ValidateName(a) != nil || distsync.ValidateName(b) != nil {
			return
		}
		checkEtcdNames(t, a, b)
		checkEtcdNames(t, b, a)
		checkRedisNames(t, a, b)
		checkZooKeeperNames(t, a, b)
	})
}

// checkEtcdNames checks a against b, one way.
func checkEtcdNames(t *testing.T, a, b string) {
	pa, pb := etcdq.Prefix(a), etcdq.Prefix(b)
	const child = "694d9a2b1c3e_0123456789abcdef"
	holders := []string{pa + child, pa + "w" + child, pa + "r" + child, pa + "694d9a2b1c3e"}
	for _, k := range holders {
		if !etcdq.IsContender(pa, []byte(k)) {
			t.Errorf("etcd: key %q of %q is no contender of it", k, a)
		}
		if etcdq.IsContender(pb, []byte(k)) {
			t.Errorf("etcd: key %q of %q is a contender of %q", k, a, b)
		}
	}
	for _, k := range []string{etcdq.LimitKey(a), etcdq.Tombstone(holders[0]), etcdq.Tombstone(holders[1])} {
		switch {
		case !strings.HasPrefix(k, pa):
			t.Errorf("etcd: control key %q of %q is not under its prefix %q", k, a, pa)
		case etcdq.IsContender(pa, []byte(k)) || etcdq.IsContender(pb, []byte(k)):
			t.Errorf("etcd: control key %q of %q is a contender", k, a)
		case k == etcdq.LimitKey(b) || k == etcdq.Tombstone(pb+child):
			t.Errorf("etcd: %q and %q share the control key %q", a, b, k)
		}
	}
}

// redisKeyList lists every key (and the channel) of a name's Keys.
func redisKeyList(k redisq.Keys) []string {
	return []string{k.Holders, k.Queue, k.QueueExp, k.Tokens, k.Seq, k.Limit, k.History, k.Channel}
}

// hashTag returns the part of key Redis Cluster hashes: the text between
// the first '{' and the next '}', if not empty, else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

func checkRedisNames(t *testing.T, a, b string) {
	ka, kb := redisKeyList(redisq.KeysFor(a)), redisKeyList(redisq.KeysFor(b))
	tagA, tagB := hashTag(ka[0]), hashTag(kb[0])
	if tagA == tagB {
		t.Errorf("redis: %q and %q share the hash tag %q", a, b, tagA)
	}
	seen := map[string]string{}
	for i, keys := range [][]string{ka, kb} {
		name, tag := []string{a, b}[i], []string{tagA, tagB}[i]
		for _, k := range keys {
			if hashTag(k) != tag || tag == k {
				t.Errorf("redis: key %q of %q is not hashed by the name's tag %q", k, name, tag)
			}
			if other, ok := seen[k]; ok {
				t.Errorf("redis: key %q belongs to %q and %q", k, other, name)
			}
			seen[k] = name
		}
	}
}

func checkZooKeeperNames(t *testing.T, a, b string) {
	root := zksync.DefaultPrefix
	pa, errA := zksync.NodePath(root, a)
	pb, errB := zksync.NodePath(root, b)
	if errA != nil || errB != nil {
		t.Fatalf("zookeeper: NodePath refused valid names: %v, %v", errA, errB)
	}
	if pa == pb {
		t.Errorf("zookeeper: %q and %q share the node %q", a, b, pa)
	}
	for _, p := range []string{pa, pb} {
		seg, ok := strings.CutPrefix(p, root+"/")
		if !ok || seg == "" || seg == "." || seg == ".." || strings.Contains(seg, "/") {
			t.Errorf("zookeeper: node %q is not one segment under %q", p, root)
		}
		for _, r := range seg {
			if r < 0x20 || r >= 0x7F && r <= 0x9F || r >= 0xD800 && r <= 0xF8FF || r >= 0xFFF0 {
				t.Errorf("zookeeper: node %q holds %U, which ZooKeeper cannot store", p, r)
			}
		}
	}
}
