package integration

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdPrefixed opens a Session on the shared member with prefix and
// identity.
func etcdPrefixed(t *testing.T, prefix, id string) *etcdsync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdsync.NewSession(ctx, etcdServer.Client(t), etcdsync.WithTTL(etcdSessionTTL),
		etcdsync.WithPrefix(prefix), etcdsync.WithIdentity(id))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestEtcdPrefixesAreApart uses one name through two Sessions with the
// prefixes "app1/" and "app2/" on one member: both hold its Mutex,
// Semaphore and leadership at once, each under its own prefix, and each
// key's value shows the holder's identity (the weight first for a
// semaphore), as `etcdctl get` prints it.
func TestEtcdPrefixesAreApart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "jobs/" + strings.ReplaceAll(t.Name(), "/", "_")
	c := etcdServer.Client(t)
	var held []distsync.Lease
	for _, app := range []string{"app1", "app2"} {
		s := etcdPrefixed(t, app+"/", app+"-host:42")
		m, err := s.Mutex(name)
		if err != nil {
			t.Fatal(err)
		}
		l, err := m.TryLock(ctx)
		if err != nil {
			t.Fatalf("%s: TryLock of %q: %v (the other prefix's holder must not block it)", app, name, err)
		}
		held = append(held, l)
		sem, err := s.Semaphore(ctx, name+"-sem", 3)
		if err != nil {
			t.Fatal(err)
		}
		sl, err := sem.TryAcquireN(ctx, 3)
		if err != nil {
			t.Fatalf("%s: TryAcquireN(3) of %q: %v", app, name+"-sem", err)
		}
		held = append(held, sl)
		e, err := s.Election(name + "-elect")
		if err != nil {
			t.Fatal(err)
		}
		ld, err := e.Campaign(ctx, []byte(app+"-value"))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ld)
		if got, err := e.Leader(ctx); err != nil || string(got.Value) != app+"-value" {
			t.Fatalf("%s: leader %q, %v; want its own value", app, got.Value, err)
		}

		resp, err := c.Get(ctx, app+"/"+name+"/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != app+"-host:42" {
			t.Fatalf("%s: keys under %q: %v; want one whose value is the identity", app, app+"/"+name+"/", resp.Kvs)
		}
		resp, err = c.Get(ctx, app+"/"+name+"-sem/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		var vals []string
		for _, kv := range resp.Kvs {
			vals = append(vals, string(kv.Value))
		}
		// The holder "3 identity" and the limit "N/\x00limit" = "3".
		if strings.Join(vals, ",") != "3,3 "+app+"-host:42" {
			t.Fatalf("%s: semaphore values %q, want the limit and %q", app, vals, "3 "+app+"-host:42")
		}
	}
	// Nothing at the unprefixed name.
	if resp, err := c.Get(ctx, name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Fatalf("unprefixed %q holds %v keys (%v), want 0", name, resp, err)
	}
	// etcdctl shows the holder's identity.
	p := exec.Command(etcdctlPath(t), "--endpoints="+strings.Join(etcdServer.Endpoints(), ","), "get", "--prefix", "app1/"+name+"/")
	out, err := p.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "\napp1-host:42\n") {
		t.Fatalf("etcdctl get --prefix app1/%s/ printed %q, want the identity", name, out)
	}
	for _, l := range held {
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEtcdBadIdentity: an identity ValidateIdentity refuses fails the
// constructor with ErrInvalidConfig.
func TestEtcdBadIdentity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range []string{"", "a\nb", strings.Repeat("x", distsync.MaxIdentityLen+1)} {
		s, err := etcdsync.NewSession(ctx, etcdServer.Client(t), etcdsync.WithIdentity(id))
		if !errors.Is(err, distsync.ErrInvalidConfig) {
			if s != nil {
				_ = s.Close()
			}
			t.Fatalf("WithIdentity(%q): got %v, want ErrInvalidConfig", id, err)
		}
	}
}
