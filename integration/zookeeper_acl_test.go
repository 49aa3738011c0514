package integration

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/go-zookeeper/zk"
)

// The restricted user of TestZooKeeperDigestUser: a digest user whose only
// rights are on its own root, zkTenantRoot.
const (
	zkTenantRoot = "/tenant-a"
	zkTenantUser = "tenant-a"
	zkTenantPw   = "pw-a"
)

// zkTenantRootACL creates zkTenantRoot as an administrator would: a
// persistent node whose ACL grants everything to the digest user only. The
// administrator's connection has no credentials of its own.
func zkTenantRootACL(t *testing.T) []zk.ACL {
	t.Helper()
	acl := zk.DigestACL(zk.PermAll, zkTenantUser, zkTenantPw)
	if _, err := zkAdmin(t).Create(zkTenantRoot, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatal(err)
	}
	return acl
}

// TestZooKeeperDigestUser: a digest user under its own root uses every
// primitive, and a Session without its credentials is refused at once
// with ErrDenied.
func TestZooKeeperDigestUser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acl := zkTenantRootACL(t)
	s := zkSession(t, zksync.WithPrefix(zkTenantRoot), zksync.WithAuth("digest", []byte(zkTenantUser+":"+zkTenantPw)),
		zksync.WithACL(acl))
	name := "jobs/" + t.Name()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s as the digest user: %v", what, err)
		}
	}
	release := func(what string, l distsync.Lease, err error) {
		t.Helper()
		must(what, err)
		must(what+" release", l.Release(ctx))
	}

	m, err := s.Mutex(name)
	must("Mutex", err)
	l, err := m.Lock(ctx)
	release("Lock", l, err)
	l, err = m.TryLock(ctx)
	release("TryLock", l, err)

	rw, err := s.RWMutex(name + "-rw")
	must("RWMutex", err)
	r1, err := rw.RLock(ctx)
	must("RLock", err)
	r2, err := rw.TryRLock(ctx)
	release("TryRLock", r2, err)
	must("RUnlock", r1.Release(ctx))
	l, err = rw.Lock(ctx)
	release("write Lock", l, err)

	sem, err := s.Semaphore(ctx, name+"-sem", 3)
	must("Semaphore", err)
	p1, err := sem.Acquire(ctx)
	must("Acquire", err)
	l, err = sem.AcquireN(ctx, 2)
	release("AcquireN(2)", l, err)
	must("SetLimit", sem.SetLimit(ctx, 4))
	l, err = sem.TryAcquireN(ctx, 3)
	release("TryAcquireN(3) after SetLimit(4)", l, err)
	must("Acquire release", p1.Release(ctx))

	e, err := s.Election(name + "-election")
	must("Election", err)
	octx, ocancel := context.WithCancel(ctx)
	defer ocancel()
	obs := e.Observe(octx)
	ld, err := e.Campaign(ctx, []byte("tenant-a-leader"))
	must("Campaign", err)
	must("Proclaim", ld.Proclaim(ctx, []byte("tenant-a-proclaimed")))
	got, err := e.Leader(ctx)
	must("Leader", err)
	if string(got.Value) != "tenant-a-proclaimed" {
		t.Errorf("Leader().Value = %q, want the proclaimed value", got.Value)
	}
	for st := range obs {
		if string(st.Value) == "tenant-a-proclaimed" {
			break
		}
	}
	if octx.Err() != nil {
		t.Fatal("Observe never showed the proclaimed value")
	}
	must("Resign", ld.Release(ctx))

	// The root and the name's node carry the digest ACL (the user reads
	// them), and nobody else may read them.
	for _, n := range []string{"", name + "-sem"} {
		p := zkTenantRoot
		if n != "" {
			p, err = zksync.NodePath(zkTenantRoot, n)
			must("NodePath", err)
			l, err := sem.Acquire(ctx) // keeps the container node
			must("Acquire", err)
			defer l.Release(ctx)
		}
		got, _, err := s.Conn().GetACL(p)
		if err != nil || len(got) != 1 || got[0] != acl[0] {
			t.Errorf("ACL of %s: %v, %v; want %v", p, got, err, acl)
		}
		if _, _, err := zkAdmin(t).Get(p); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("Get(%s) without the digest: %v, want ErrNoAuth", p, err)
		}
	}

	// A Session without the credentials is refused at once.
	no := zkSession(t, zksync.WithPrefix(zkTenantRoot))
	denied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, distsync.ErrDenied) {
			t.Errorf("%s without the digest: %v, want ErrDenied", what, err)
		}
	}
	start := time.Now()
	nm, _ := no.Mutex(name)
	_, err = nm.Lock(ctx)
	denied("Lock", err)
	nrw, _ := no.RWMutex(name + "-rw")
	_, err = nrw.RLock(ctx)
	denied("RLock", err)
	_, err = nrw.Lock(ctx)
	denied("write Lock", err)
	_, err = no.Semaphore(ctx, name+"-sem", 3)
	denied("Semaphore", err)
	ne, _ := no.Election(name + "-election")
	_, err = ne.Campaign(ctx, []byte("intruder"))
	denied("Campaign", err)
	_, err = ne.Leader(ctx)
	denied("Leader", err)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusals took %v, want at once", d)
	}
}
