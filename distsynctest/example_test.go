package distsynctest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/etcdsync"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A program (or TestMain) starts an embedded etcd member with StartEtcd; a
// test would call distsynctest.Etcd(t) and get it stopped by itself.
func ExampleStartEtcd() {
	etcd, err := distsynctest.StartEtcd()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer etcd.Close()

	ctx := context.Background()
	s, err := etcdsync.Dial(ctx, clientv3.Config{Endpoints: etcd.Endpoints()}, etcdsync.WithTTL(time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	m, _ := s.Mutex("jobs/report")
	l, err := m.Lock(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("locked, token above zero:", l.Token() > 0)
	fmt.Println("released:", l.Release(ctx) == nil)
	// Output:
	// locked, token above zero: true
	// released: true
}

// Memory serves the whole contract in the process: two Sessions exclude
// each other as two hosts would, and an operator's ForceRelease ends the
// holder's lease.
func ExampleMemory() {
	var mem distsynctest.Memory
	a, _ := mem.NewSession("host-a")
	b, _ := mem.NewSession("host-b")
	defer a.Close()
	defer b.Close()
	ctx := context.Background()

	ma, _ := a.Mutex("report")
	mb, _ := b.Mutex("report")
	l, _ := ma.Lock(ctx)
	_, err := mb.TryLock(ctx)
	fmt.Println("host B would block:", errors.Is(err, distsync.ErrWouldBlock))

	st, _ := b.Inspect(ctx, "report")
	fmt.Println("holder:", st.Holders[0].Identity)
	_ = b.ForceRelease(ctx, "report", st.Holders[0].Token)
	<-l.Done()
	fmt.Println("host A lost it:", distsync.LostReason(l.Err()))
	// Output:
	// host B would block: true
	// holder: host-a
	// host A lost it: force_released
}

// An implementation of distsync's contract runs the conformance suite from
// a test of its own. Open gives every simulated process a Session; the
// other hooks are optional.
func ExampleTestSession() {
	_ = func(t *testing.T) { // func TestConformance(t *testing.T)
		var mem distsynctest.Memory
		distsynctest.TestSession(t, distsynctest.Backend{
			Open: func(t *testing.T, identity string) distsync.Session {
				s, err := mem.NewSession(identity)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				return s
			},
		})
	}
}
