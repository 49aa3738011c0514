package integration

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
	"github.com/distsync/distsync/internal/testserver"
	goredis "github.com/redis/go-redis/v9"
)

// sentinelGroup starts a master, a replica and a Sentinel watching them
// for one test, stopped at cleanup.
func sentinelGroup(t *testing.T) (*testserver.RedisGroup, *testserver.Sentinel) {
	t.Helper()
	g := redisGroup(t, 2)
	s, err := g.StartSentinel("distsync-" + t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return g, s
}

// sentinelClient returns a go-redis failover client that finds the master
// through s, closed at cleanup.
func sentinelClient(t *testing.T, s *testserver.Sentinel) *goredis.Client {
	t.Helper()
	c := goredis.NewFailoverClient(&goredis.FailoverOptions{
		MasterName:            s.MasterName(),
		SentinelAddrs:         []string{s.Addr()},
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// staleFailover cuts the replication at the current master's front, lets
// every workload make n acquisitions that the replica therefore misses,
// and has the Sentinel fail over to that stale replica. It heals the cut
// and waits until the Sentinel could fail over again. It returns the
// highest token issued before the failover.
func staleFailover(t *testing.T, g *testserver.RedisGroup, s *testserver.Sentinel, ws []*histWorkload, n int64) (from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	master, err := s.Master(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	g.Fronts[master].CutReplication()
	progress(t, ws, n, "while the replica is cut off")
	from, to, err = s.Failover(30 * time.Second)
	g.Fronts[master].HealReplication()
	if err != nil {
		t.Fatal(err)
	}
	return from, to
}

// tokenLog records when each acquisition of each primitive started and
// returned, and its token.
type tokenLog struct {
	mu  sync.Mutex
	acq map[string][]tokenAcq
}

type tokenAcq struct {
	start, end time.Time
	token      uint64
}

// wrap returns acquire, recording what it acquires under prim.
func (l *tokenLog) wrap(prim string, acquire func(context.Context) (distsync.Lease, error)) func(context.Context) (distsync.Lease, error) {
	return func(ctx context.Context) (distsync.Lease, error) {
		start := time.Now()
		ls, err := acquire(ctx)
		if err == nil {
			l.mu.Lock()
			l.acq[prim] = append(l.acq[prim], tokenAcq{start: start, end: time.Now(), token: ls.Token()})
			l.mu.Unlock()
		}
		return ls, err
	}
}

// across returns, for each primitive, the highest token acquired before
// promoted (the acquisitions the stale replica missed included) and the
// lowest of those started after it (on either master: clients move when
// the Sentinel tells them).
func (l *tokenLog) across(promoted time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lines []string
	for _, p := range redisHistPrims {
		var highest, lowest uint64
		after := 0
		for _, a := range l.acq[p.prim] {
			if a.end.Before(promoted) {
				highest = max(highest, a.token)
			}
		}
		for _, a := range l.acq[p.prim] {
			if a.start.After(promoted) {
				after++
				if lowest == 0 || a.token < lowest {
					lowest = a.token
				}
			}
		}
		lines = append(lines, fmt.Sprintf("%s: highest before %d, lowest after %d (%d after)", p.prim, highest, lowest, after))
	}
	return lines
}

// ordered checks P3 in real time over the whole run, for each primitive:
// an acquisition that started after another one returned has a greater
// token. A promoted replica that went on from its stale counter breaks
// it; with the fix its tokens start at its clock, above every token the
// old master issued before (the two share the machine's clock here). It
// returns one line per primitive.
func (l *tokenLog) ordered(t *testing.T) []string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var lines []string
	for _, p := range redisHistPrims {
		acq := append([]tokenAcq(nil), l.acq[p.prim]...)
		sort.Slice(acq, func(i, j int) bool { return acq[i].end.Before(acq[j].end) })
		upTo := make([]uint64, len(acq)) // highest token of acq[:i+1]
		for i, a := range acq {
			upTo[i] = a.token
			if i > 0 {
				upTo[i] = max(upTo[i], upTo[i-1])
			}
		}
		bad, worst := 0, ""
		for _, b := range acq {
			// The acquisitions that returned before b started.
			n := sort.Search(len(acq), func(i int) bool { return !acq[i].end.Before(b.start) })
			if n > 0 && b.token <= upTo[n-1] {
				if bad == 0 {
					worst = fmt.Sprintf("; first: token %d after %d", b.token, upTo[n-1])
				}
				bad++
			}
		}
		lines = append(lines, fmt.Sprintf("%s: %d acquisitions, %d with a token not above an earlier one%s", p.prim, len(acq), bad, worst))
		if bad > 0 {
			t.Errorf("%s: %d acquisitions got a token not above one acquired before they started%s", p.prim, bad, worst)
		}
	}
	return lines
}

// TestHistoryRedisSentinel runs the fenced-history workload on every Redis
// primitive through go-redis's Sentinel failover client, 8 clients each,
// while a real Sentinel fails over again and again to a replica that
// missed the last acquisitions (its replication link cut at the master's
// front), and holders are paused past their TTL. The fenced registers
// must see no violation (tokens go on above the stale replica's counter),
// and the unfenced control must lose updates. Each round is two failovers
// (there and back); the short run does one round, DISTSYNC_SOAK as many
// as fit.
func TestHistoryRedisSentinel(t *testing.T) {
	soak := soakDuration(t)
	g, sen := sentinelGroup(t)
	const (
		clients = 8
		ttl     = 500 * time.Millisecond
	)
	conns := make([]goredis.UniversalClient, clients)
	for i := range conns {
		conns[i] = sentinelClient(t, sen)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &stopper{cancel: cancel}
	start := time.Now()
	var (
		ws        []*histWorkload
		faults    faultCounts
		failovers []string
		tokens    = &tokenLog{acq: map[string][]tokenAcq{}}
	)
	defer func() {
		run.stop()
		for _, line := range tokens.ordered(t) {
			t.Log("tokens in real-time order: " + line)
		}
		checkHistories(t, "Redis, Sentinel failovers to a stale replica", ws, &faults, time.Since(start),
			fmt.Sprintf("%d clients per primitive through a Sentinel failover client, session TTL %v, pauses %v", clients, ttl, 3*ttl),
			fmt.Sprintf("failovers (node from->to, highest token before the cut, highest after): %v", failovers))
	}()
	for _, p := range redisHistPrims {
		name := "history-sentinel-" + p.prim
		w := newHistWorkload(p.prim, &memRegister{fenced: true}, &memRegister{})
		ws = append(ws, w)
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
				acquire: tokens.wrap(p.prim, acquire), close: s.Close,
				freeze: func(l distsync.Lease) func() {
					redisq.SuspendRenewal(l, true)
					return func() { redisq.SuspendRenewal(l, false) }
				},
			}, nil
		}))
	}
	maxTok := func() uint64 {
		var m uint64
		for _, w := range ws {
			m = max(m, w.maxToken.Load())
		}
		return m
	}

	deadline := time.Now().Add(soak)
	progress(t, ws, 10, "before the faults")
	for {
		for range 2 {
			for _, w := range ws {
				w.pauseHolder(t, 3*ttl, 2*time.Second)
				faults.add("pause-holder")
			}
			progress(t, ws, 5, "after the pauses")

			before := maxTok()
			began := time.Now()
			from, to := staleFailover(t, g, sen, ws, 5)
			failedOver := time.Now()
			faults.add("sentinel-failover-to-stale-replica")
			// Were the stale replica's tokens below the ones issued
			// before, the fenced registers would refuse the new holders
			// until its counter caught up.
			progress(t, ws, 10, "after the failover")
			resumed := time.Now()
			failovers = append(failovers, fmt.Sprintf("%d->%d (%d, %d)", from, to, before, maxTok()))
			for _, line := range tokens.across(failedOver) {
				t.Logf("failover %d->%d, %s", from, to, line)
			}
			if err := g.WaitInSync(from, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			synced := time.Now()
			if err := sen.WaitReady(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			t.Logf("failover %d->%d: cut and failover %v, 10 acquisitions each %v later, old master in sync %v later, Sentinel ready %v later",
				from, to, failedOver.Sub(began).Round(time.Millisecond), resumed.Sub(failedOver).Round(time.Millisecond),
				synced.Sub(resumed).Round(time.Millisecond), time.Since(synced).Round(time.Millisecond))
		}
		calm(soak, deadline)
		if time.Now().After(deadline) {
			break
		}
	}
}
