package redisq

import (
	"strings"
	"testing"

	"github.com/distsync/distsync/internal/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

func TestSlot(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want uint16
	}{
		{"123456789", 0x31C3 % 16384}, // the Cluster specification's CRC16 check value
		{"{123456789}.x", 0x31C3 % 16384},
		{"a{123456789}b", 0x31C3 % 16384},
	} {
		if got := Slot(tc.key); got != tc.want {
			t.Errorf("Slot(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
	// An empty tag does not count: the whole key is hashed.
	if Slot("foo{}{bar}") == Slot("bar") {
		t.Errorf("Slot(%q) used the second tag", "foo{}{bar}")
	}
	if Slot("foo{{bar}}zap") != Slot("{bar") {
		t.Errorf("Slot(%q) != Slot(%q)", "foo{{bar}}zap", "{bar")
	}
}

// Every key of a name lives in one Cluster slot, whatever the name holds,
// and names whose text would end or nest the tag still get tags of their
// own.
func TestKeysShareSlot(t *testing.T) {
	for _, name := range []string{"a", "a/b", "{a}", "a}b", "{", "}", "%7B", "x{y}z", "ünï", "a b:c"} {
		k := KeysFor(name)
		if err := k.checkSlot(); err != nil {
			t.Errorf("KeysFor(%q): %v", name, err)
		}
		if Slot(k.Holders) != Slot("{"+encoder.Replace(name)+"}") {
			t.Errorf("KeysFor(%q): holders key %q not hashed by the name's tag", name, k.Holders)
		}
	}
	if KeysFor("{a}").Holders == KeysFor("a").Holders || KeysFor("%7Ba%7D").Holders == KeysFor("{a}").Holders {
		t.Error("different names share keys")
	}
}

// Keys and channels of different (prefix, name) pairs never meet: the
// prefix is the text before the first '{' of every key, and a session's
// channel has no '{' and a fixed-length id.
func TestPrefixesDisjoint(t *testing.T) {
	prefixes := []string{DefaultPrefix, "app:", "app:x", "a", "app:session:", "distsync:session:"}
	names := []string{"a", "x", "session", "x{y}", "}", "%7B", "a/b"}
	seen := map[string]string{}
	add := func(key, owner string) {
		if prev, ok := seen[key]; ok && prev != owner {
			t.Errorf("%q belongs to %s and %s", key, prev, owner)
		}
		seen[key] = owner
	}
	for _, p := range prefixes {
		if err := ValidatePrefix(p); err != nil {
			t.Fatal(err)
		}
		add(sessionChannel(p, "0123456789abcdef"), "session of "+p)
		for _, n := range names {
			k := KeysWith(p, n)
			owner := p + " " + n
			for _, key := range append(k.list(), k.Channel) {
				add(key, owner)
				if got := key[:strings.IndexByte(key, '{')]; got != p {
					t.Errorf("key %q: prefix %q, want %q", key, got, p)
				}
			}
			if err := k.checkSlot(); err != nil {
				t.Error(err)
			}
		}
	}
}
