package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
	goredis "github.com/redis/go-redis/v9"
)

// redisHistPrims open each Redis primitive on a session.
var redisHistPrims = []struct {
	prim string
	open func(s *redissync.Session, name string) (func(context.Context) (distsync.Lease, error), error)
}{
	{"mutex", func(s *redissync.Session, name string) (func(context.Context) (distsync.Lease, error), error) {
		m, err := s.Mutex(name)
		if err != nil {
			return nil, err
		}
		return m.Lock, nil
	}},
	{"semaphore", func(s *redissync.Session, name string) (func(context.Context) (distsync.Lease, error), error) {
		sem, err := s.Semaphore(context.Background(), name, 1)
		if err != nil {
			return nil, err
		}
		return sem.Acquire, nil
	}},
	{"rwmutex", func(s *redissync.Session, name string) (func(context.Context) (distsync.Lease, error), error) {
		rw, err := s.RWMutex(name)
		if err != nil {
			return nil, err
		}
		return rw.Lock, nil
	}},
	{"election", func(s *redissync.Session, name string) (func(context.Context) (distsync.Lease, error), error) {
		e, err := s.Election(name)
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

// TestHistoryRedis runs the fenced-history workload on every Redis
// primitive at once, 8 clients each (a connection per client, a session
// per client and primitive), while the nemesis pauses holders past their
// TTL (renewals suspended, as in a process pause), deletes a holder's
// entry, and kills and restarts redis-server.
func TestHistoryRedis(t *testing.T) {
	soak := soakDuration(t)
	r := ownRedis(t)
	const (
		clients = 8
		ttl     = 500 * time.Millisecond
	)
	conns := make([]goredis.UniversalClient, clients)
	for i := range conns {
		conns[i] = redisClient(t, r.Addr())
	}
	admin := redisClient(t, r.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	run := &stopper{cancel: cancel}
	start := time.Now()
	var (
		ws     []*histWorkload
		faults faultCounts
	)
	var restarts int
	// The histories are checked however the run ends, so that a failed
	// soak still reports what it saw.
	defer func() {
		run.stop()
		checkHistories(t, "Redis, single server", ws, &faults, time.Since(start),
			fmt.Sprintf("%d clients per primitive, session TTL %v, pauses %v", clients, ttl, 3*ttl),
			fmt.Sprintf("redis-server restarted empty %d times; token counters restart from the server clock (µs), above every token issued", restarts))
	}()
	names := map[*histWorkload]string{}
	for _, p := range redisHistPrims {
		name := "history-" + p.prim
		w := newHistWorkload(p.prim, &memRegister{fenced: true}, &memRegister{})
		ws = append(ws, w)
		names[w] = name
		run.wgs = append(run.wgs, w.run(ctx, clients, func(ctx context.Context, i int) (*histClient, error) {
			s, err := redissync.NewSession(ctx, conns[i], redissync.WithTTL(ttl))
			if err != nil {
				return nil, err
			}
			acquire, err := p.open(s, name)
			if err != nil {
				_ = s.Close()
				return nil, err
			}
			return &histClient{
				acquire: acquire, close: s.Close,
				freeze: func(l distsync.Lease) func() {
					redisq.SuspendRenewal(l, true)
					return func() { redisq.SuspendRenewal(l, false) }
				},
			}, nil
		}))
	}

	deadline := time.Now().Add(soak)
	progress(t, ws, 10, "before the faults")
	for round := 0; ; round++ {
		for _, w := range ws {
			w.pauseHolder(t, 3*ttl, 2*time.Second)
			faults.add("pause-holder")
		}
		progress(t, ws, 5, "after the pauses")

		w := ws[round%len(ws)]
		g := &grab{targeted: true, within: 2 * time.Second}
		h := w.take(t, g, 30*time.Second)
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		err := redisq.DeleteMember(dctx, admin, h.l)
		dcancel()
		close(g.release)
		if err != nil {
			t.Fatalf("delete the %s holder's entry: %v", w.prim, err)
		}
		faults.add("delete-holder-key")
		progress(t, ws, 5, "after the delete")

		r.Kill()
		faults.add("kill-restart-server")
		time.Sleep(ttl)
		if err := r.Restart(); err != nil {
			t.Fatal(err)
		}
		restarts++
		// The server restarted empty: the token counters start again from
		// the server's clock in microseconds, above every token issued, so
		// the fenced store accepts the next holders (were they below, it
		// would refuse them all and progress would stop here).
		progress(t, ws, 5, "after the restart")

		calm(soak, deadline)
		if time.Now().After(deadline) {
			break
		}
	}
}
