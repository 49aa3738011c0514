package zksync_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync/fallback/zksync"
)

// TestPrefixesDisjoint: two Sessions with different prefixes on one server
// both hold a Mutex of the same name, each under its own prefix.
func TestPrefixesDisjoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	name := "x-" + t.Name()
	var paths []string
	for _, prefix := range []string{"/app1", "/app2"} {
		s := session(t, zksync.WithPrefix(prefix))
		m, err := s.Mutex(name)
		if err != nil {
			t.Fatal(err)
		}
		l, err := m.TryLock(ctx)
		if err != nil {
			t.Fatalf("TryLock(%q) under %s: %v, want held", name, prefix, err)
		}
		t.Cleanup(func() { _ = l.Release(context.Background()) })
		p := m.(*zksync.Mutex).Path()
		if !strings.HasPrefix(p, prefix+"/") {
			t.Errorf("Path() = %q, want under %s/", p, prefix)
		}
		paths = append(paths, p)
	}
	c := conn(t, 4*time.Second)
	for _, p := range paths {
		waitChildren(t, c, p, 1)
	}
}
