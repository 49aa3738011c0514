package zksync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/distsync/distsync/fallback/zksync"
	"github.com/go-zookeeper/zk"
)

// TestArmedTellsDeletion: a shared watch that brought the node's deletion
// says so once (a waiter then counts the node as gone without reading it);
// a watch that brought a change of the data, or that another receiver
// emptied, says nothing of the kind: the node may still be there.
func TestArmedTellsDeletion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := session(t)
	c := s.Conn()
	base := fmt.Sprintf("/armed-%d", time.Now().UnixNano())
	for _, p := range []string{base, base + "/d", base + "/c"} {
		if _, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = c.Delete(base+"/c", -1)
		_ = c.Delete(base, -1)
	})
	watch := func(p string) {
		t.Helper()
		if ok, err := zksync.WatchShared(ctx, s, p); err != nil || !ok {
			t.Fatalf("watch %s: %v, %v", p, ok, err)
		}
		if w, d := zksync.Armed(s, p); !w || d {
			t.Fatalf("%s just watched: watching %v, deleted %v", p, w, d)
		}
	}
	arrive := func() { time.Sleep(300 * time.Millisecond) } // the event
	watch(base + "/d")
	watch(base + "/c")
	if err := c.Delete(base+"/d", -1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(base+"/c", []byte("x"), -1); err != nil {
		t.Fatal(err)
	}
	arrive()
	if w, d := zksync.Armed(s, base+"/d"); w || !d {
		t.Errorf("deleted node: watching %v, deleted %v; want false, true", w, d)
	}
	if w, d := zksync.Armed(s, base+"/d"); w || d {
		t.Errorf("deleted node, event taken already: watching %v, deleted %v; want false, false", w, d)
	}
	if w, d := zksync.Armed(s, base+"/c"); w || d {
		t.Errorf("changed node: watching %v, deleted %v; want false, false", w, d)
	}
}
