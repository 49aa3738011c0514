package zksync_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
)

// TestIdentityInNodeData: an operator's plain Get of an acquisition's node
// shows the Session's identity for a Mutex, an RWMutex's reader and
// writer, and a Semaphore (whose weight stays in the node name); an
// Election node holds the campaign value. Without WithIdentity the
// identity is distsync.DefaultIdentity().
func TestIdentityInNodeData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const id = "worker-7@rack-3"
	s := session(t, zksync.WithIdentity(id))
	if s.Identity() != id {
		t.Errorf("Identity() = %q, want %q", s.Identity(), id)
	}
	c := conn(t, 4*time.Second)
	get := func(what string, l distsync.Lease, err error) string {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer l.Release(ctx)
		p := l.(*zksync.Lease).Path()
		data, _, err := c.Get(p)
		if err != nil {
			t.Fatalf("%s: Get(%s): %v", what, p, err)
		}
		return p + " = " + string(data)
	}
	check := func(what, got, want string) {
		t.Helper()
		if !strings.HasSuffix(got, " = "+want) {
			t.Errorf("%s: node %s, want data %q", what, got, want)
		}
	}
	name := "jobs/" + t.Name()
	m, _ := s.Mutex(name)
	l, err := m.Lock(ctx)
	check("Mutex", get("Mutex", l, err), id)
	rw, _ := s.RWMutex(name + "-rw")
	l, err = rw.RLock(ctx)
	check("RLock", get("RLock", l, err), id)
	l, err = rw.Lock(ctx)
	check("Lock", get("Lock", l, err), id)
	sem, err := s.Semaphore(ctx, name+"-sem", 3)
	if err != nil {
		t.Fatal(err)
	}
	l, err = sem.AcquireN(ctx, 2)
	got := get("AcquireN", l, err)
	check("AcquireN", got, id)
	if !strings.Contains(got, "-permit.2-") {
		t.Errorf("AcquireN(2) node %s, want the weight in its name", got)
	}
	e, _ := s.Election(name + "-election")
	ld, err := e.Campaign(ctx, []byte("value-1"))
	if err != nil {
		t.Fatal(err)
	}
	data, _, err := c.Get(ld.(*zksync.Leadership).Path())
	if err != nil || string(data) != "value-1" {
		t.Errorf("Election node data %q, %v; want the campaign value", data, err)
	}
	_ = ld.Release(ctx)

	m, _ = session(t).Mutex(name)
	l, err = m.Lock(ctx)
	check("default identity", get("default", l, err), distsync.DefaultIdentity())
}
