package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/fallback/zksync"
)

// zkHistPrims open each ZooKeeper primitive on a session.
var zkHistPrims = []struct {
	prim string
	open func(ctx context.Context, s *zksync.Session, name string) (func(context.Context) (distsync.Lease, error), error)
}{
	{"mutex", func(_ context.Context, s *zksync.Session, name string) (func(context.Context) (distsync.Lease, error), error) {
		m, err := zkNewMutex(s, name)
		if err != nil {
			return nil, err
		}
		return m.Lock, nil
	}},
	{"semaphore", func(ctx context.Context, s *zksync.Session, name string) (func(context.Context) (distsync.Lease, error), error) {
		sem, err := zkNewSemaphore(ctx, s, name, 1)
		if err != nil {
			return nil, err
		}
		return sem.Acquire, nil
	}},
	{"rwmutex", func(_ context.Context, s *zksync.Session, name string) (func(context.Context) (distsync.Lease, error), error) {
		rw, err := zkNewRWMutex(s, name)
		if err != nil {
			return nil, err
		}
		return rw.Lock, nil
	}},
	{"election", func(_ context.Context, s *zksync.Session, name string) (func(context.Context) (distsync.Lease, error), error) {
		e, err := zkNewElection(s, name)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) (distsync.Lease, error) {
			l, err := e.Campaign(ctx, []byte(name))
			if err != nil {
				return nil, err
			}
			return l, nil
		}, nil
	}},
}

// TestHistoryZooKeeper runs the fenced-history workload on every ZooKeeper
// primitive at once, 8 clients each (a session per client and primitive,
// each through a TCP proxy of its own), while the nemesis pauses holders
// past their session timeout (their connection frozen by the proxy, as in
// a process pause), expires a holder's session by cutting it off for
// longer than the timeout and by closing it from outside, and kills and
// restarts the server.
func TestHistoryZooKeeper(t *testing.T) {
	soak := soakDuration(t)
	const (
		clients = 8
		timeout = 2 * time.Second
	)
	ctx, cancel := context.WithCancel(context.Background())
	run := &stopper{cancel: cancel}
	start := time.Now()
	var (
		ws     []*histWorkload
		faults faultCounts
	)
	// The histories are checked however the run ends, so that a failed
	// soak still reports what it saw.
	defer func() {
		run.stop()
		checkHistories(t, "ZooKeeper, single server", ws, &faults, time.Since(start),
			fmt.Sprintf("%d clients per primitive, session timeout %v, pauses %v", clients, timeout, timeout+1500*time.Millisecond))
	}()
	for _, p := range zkHistPrims {
		name := "history-" + p.prim
		w := newHistWorkload(p.prim, &memRegister{fenced: true}, &memRegister{})
		ws = append(ws, w)
		proxies := make([]*distsynctest.Proxy, clients)
		for i := range proxies {
			proxies[i] = distsynctest.NewProxy(t, zkServer.Addr())
		}
		run.wgs = append(run.wgs, w.run(ctx, clients, func(ctx context.Context, i int) (*histClient, error) {
			dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
			defer dcancel()
			s, err := zksync.Dial(dctx, []string{proxies[i].Addr()},
				zksync.WithTTL(timeout))
			if err != nil {
				return nil, err
			}
			acquire, err := p.open(dctx, s, name)
			if err != nil {
				_ = s.Close()
				return nil, err
			}
			return &histClient{
				acquire: acquire, close: s.Close, proxy: proxies[i], zk: s,
				freeze: func(distsync.Lease) func() { proxies[i].Cut(); return proxies[i].Heal },
			}, nil
		}))
	}

	deadline := time.Now().Add(soak)
	progress(t, ws, 10, "before the faults")
	for round := 0; ; round++ {
		for _, w := range ws {
			w.pauseHolder(t, timeout+1500*time.Millisecond, 5*time.Second)
			faults.add("pause-holder")
		}
		progress(t, ws, 5, "after the pauses")

		// Cut a holder off for longer than its session timeout: the
		// server expires the session and deletes its node.
		w := ws[round%len(ws)]
		g := &grab{targeted: true, within: 5 * time.Second}
		h := w.take(t, g, 30*time.Second)
		h.c.proxy.Cut()
		close(g.release)
		faults.add("expire-session-cut")
		time.Sleep(timeout + time.Second)
		h.c.proxy.Heal()
		progress(t, ws, 5, "after the cut")

		// End a holder's session from outside, as an expiry would.
		w = ws[(round+1)%len(ws)]
		g = &grab{targeted: true, within: 5 * time.Second}
		h = w.take(t, g, 30*time.Second)
		distsynctest.Expire(t, h.c.zk)
		close(g.release)
		faults.add("expire-session-close")
		progress(t, ws, 5, "after the expiry")

		zkServer.Kill()
		faults.add("kill-restart-server")
		time.Sleep(500 * time.Millisecond)
		if err := zkServer.Restart(); err != nil {
			t.Fatal(err)
		}
		progress(t, ws, 5, "after the restart")

		calm(soak, deadline)
		if time.Now().After(deadline) {
			break
		}
	}
}
