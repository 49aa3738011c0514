package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/fallback/zksync"
)

const (
	// gracefulGapStep spreads how long the successor has been queued when
	// the leader resigns over 0 to 195 ms: etcd serves a watch that
	// started at a past revision from a loop that runs every 100 ms, so a
	// successor that queued less than that before the handover can wait
	// for the loop.
	gracefulGapStep = 5 * time.Millisecond
	// crashTTL is the session TTL in the crash failover: etcd's minimum
	// on a production member, the fastest failover it allows.
	crashTTL = 2 * time.Second
)

var s4 = &scenario{
	id:    "S4",
	title: "Election failover",
	about: "How long leadership takes to pass on, from the leader's resignation (graceful) or from its process " +
		"dying without a word (crash: its connections close, nothing is revoked or deleted; TTL or session " +
		"timeout 2 s) until the successor's Campaign returns. Each candidate has its own client. In the " +
		"graceful case the successor has been queued 0 to 195 ms when the leader resigns. The reference is " +
		"etcd's concurrency.Election; none of the Redis or ZooKeeper references has an election. Lower is better.",
	headline:   metric{"p99", "p99 ms", "%.1f", -1},
	splitCases: true,
	metrics: []metric{
		{"p50", "p50 ms", "%.1f", -1},
		{"max", "max ms", "%.1f", -1},
		{"n", "samples", "%.0f", 0},
	},
	jobs: func(p benchParams) []job {
		var jobs []job
		for _, backend := range []string{"etcd", "Redis", "ZooKeeper"} {
			graceful := job{backend: backend, label: "graceful", timeout: 5 * time.Minute}
			crash := job{backend: backend, label: "crash", timeout: 5 * time.Minute}
			for _, impl := range failoverImpls {
				if impl.backend != backend {
					continue
				}
				graceful.entries = append(graceful.entries, entry{name: impl.name, ours: impl.ours,
					run: func(r *run) result { return gracefulFailover(r, impl, p.gracefulSamples) }})
				crash.entries = append(crash.entries, entry{name: impl.name, ours: impl.ours,
					run: func(r *run) result { return crashFailover(r, impl, p.crashLanes, p.crashPerLane) }})
			}
			jobs = append(jobs, graceful, crash)
		}
		return jobs
	},
}

// candidate is one candidate with a client of its own, as a separate
// process would have.
type candidate interface {
	campaign(ctx context.Context, value string) error // blocks until leading
	resign(ctx context.Context) error
	crash() // the process dies: its client closes, nothing is revoked
}

type failoverImpl struct {
	backend string
	name    string
	ours    bool
	new     func(r *run, name string, ttl time.Duration) (candidate, error)
	// queued counts the candidates of name (leader included).
	queued func(ctx context.Context, r *run, name string) (int, error)
}

var failoverImpls = []failoverImpl{
	{"etcd", "distsync", true, newDistsyncCandidate, etcdQueued},
	{"etcd", "concurrency.Election", false, newConcurrencyCandidate, etcdQueued},
	{"Redis", "distsync", true, newRedisCandidate, redisQueued},
	{"ZooKeeper", "distsync", true, newZKCandidate, zkQueued},
}

// candidateClient returns a client the candidate owns, closed by crash or
// after the run.
func (r *run) candidateClient() (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: r.env.etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	r.onClose(func() { cli.Close() })
	return cli, nil
}

type distsyncCandidate struct {
	cli *clientv3.Client
	e   distsync.Election
	l   distsync.Leadership
}

func newDistsyncCandidate(r *run, name string, ttl time.Duration) (candidate, error) {
	cli, err := r.candidateClient()
	if err != nil {
		return nil, err
	}
	s, err := etcdsync.NewSession(r.ctx, cli, etcdsync.WithTTL(ttl))
	if err != nil {
		return nil, err
	}
	// After a crash the revoke fails (the client is closed); the lease
	// has expired by then.
	r.onClose(func() { _ = s.Close() })
	e, err := s.Election(name)
	if err != nil {
		return nil, err
	}
	return &distsyncCandidate{cli: cli, e: e}, nil
}

func (c *distsyncCandidate) campaign(ctx context.Context, value string) (err error) {
	c.l, err = c.e.Campaign(ctx, []byte(value))
	return err
}

func (c *distsyncCandidate) resign(ctx context.Context) error { return c.l.Release(ctx) }
func (c *distsyncCandidate) crash()                           { c.cli.Close() }

type concurrencyCandidate struct {
	cli *clientv3.Client
	e   *concurrency.Election
}

func newConcurrencyCandidate(r *run, name string, ttl time.Duration) (candidate, error) {
	cli, err := r.candidateClient()
	if err != nil {
		return nil, err
	}
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(int(ttl/time.Second)))
	if err != nil {
		return nil, err
	}
	r.onClose(func() { _ = s.Close() })
	return &concurrencyCandidate{cli: cli, e: concurrency.NewElection(s, name)}, nil
}

func (c *concurrencyCandidate) campaign(ctx context.Context, value string) error {
	return c.e.Campaign(ctx, value)
}

func (c *concurrencyCandidate) resign(ctx context.Context) error { return c.e.Resign(ctx) }
func (c *concurrencyCandidate) crash()                           { c.cli.Close() }

// handover makes next campaign, waits until it is queued (and gap more),
// ends cur's leadership with end and returns the time from the end until
// next leads.
func handover(ctx context.Context, r *run, impl failoverImpl, name string, cur, next candidate, gap time.Duration, end func(candidate) error) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	led := make(chan error, 1)
	var at time.Time
	go func() {
		err := next.campaign(ctx, "next")
		at = time.Now()
		led <- err
	}()
	if err := untilCount(ctx, r, impl.queued, name, 2, time.Millisecond); err != nil {
		cancel()
		<-led
		return 0, err
	}
	time.Sleep(gap)
	t0 := time.Now()
	if err := end(cur); err != nil {
		cancel()
		<-led
		return 0, err
	}
	if err := <-led; err != nil {
		return 0, err
	}
	return at.Sub(t0), nil
}

// gracefulFailover alternates two candidates: the leader resigns while
// the other waits, then campaigns again behind it.
func gracefulFailover(r *run, impl failoverImpl, samples int) result {
	name := nextName("failover-graceful")
	cur, err := impl.new(r, name, lockTTL)
	if err != nil {
		return failed(err)
	}
	next, err := impl.new(r, name, lockTTL)
	if err != nil {
		return failed(err)
	}
	if err := cur.campaign(r.ctx, "first"); err != nil {
		return failed(err)
	}
	var ds []time.Duration
	for i := range samples {
		gap := time.Duration(i*40/samples) * gracefulGapStep
		d, err := handover(r.ctx, r, impl, name, cur, next, gap, func(c candidate) error { return c.resign(r.ctx) })
		if err != nil {
			return failedf("handover %d: %w", i, err)
		}
		ds = append(ds, d)
		cur, next = next, cur
	}
	if err := cur.resign(r.ctx); err != nil {
		return failed(err)
	}
	return durations(ds)
}

// crashFailover runs lanes at once: in each, a successor queues behind
// the leader, the leader's client is closed, and the successor becomes the
// next leader to crash.
func crashFailover(r *run, impl failoverImpl, lanes, perLane int) result {
	var (
		mu   sync.Mutex
		ds   []time.Duration
		wg   sync.WaitGroup
		errs = make([]error, lanes)
	)
	for lane := range lanes {
		name := nextName("failover-crash")
		cands := make([]candidate, perLane+1)
		for i := range cands {
			c, err := impl.new(r, name, crashTTL)
			if err != nil {
				return failed(err)
			}
			cands[i] = c
		}
		wg.Go(func() {
			if err := cands[0].campaign(r.ctx, "first"); err != nil {
				errs[lane] = err
				return
			}
			for i := range perLane {
				d, err := handover(r.ctx, r, impl, name, cands[i], cands[i+1], 0, func(c candidate) error {
					c.crash()
					return nil
				})
				if err != nil {
					errs[lane] = fmt.Errorf("crash %d: %w", i, err)
					return
				}
				mu.Lock()
				ds = append(ds, d)
				mu.Unlock()
			}
			errs[lane] = cands[perLane].resign(r.ctx)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return failed(err)
		}
	}
	return durations(ds)
}

type redisCandidate struct {
	c *goredis.Client
	e distsync.Election
	l distsync.Leadership
}

func newRedisCandidate(r *run, name string, ttl time.Duration) (candidate, error) {
	c := goredis.NewClient(&goredis.Options{Addr: r.env.redis.Addr(), ContextTimeoutEnabled: true})
	r.onClose(func() { c.Close() })
	s, err := redissync.NewSession(r.ctx, c, redissync.WithTTL(ttl))
	if err != nil {
		return nil, err
	}
	r.onClose(func() { _ = s.Close() })
	e, err := s.Election(name)
	if err != nil {
		return nil, err
	}
	return &redisCandidate{c: c, e: e}, nil
}

func (c *redisCandidate) campaign(ctx context.Context, value string) (err error) {
	c.l, err = c.e.Campaign(ctx, []byte(value))
	return err
}

func (c *redisCandidate) resign(ctx context.Context) error { return c.l.Release(ctx) }

// crash closes the client: the renewals stop and the leader's state
// expires on the server a TTL after the last one.
func (c *redisCandidate) crash() { c.c.Close() }

type zkCandidate struct {
	d *cuttableDialer
	e distsync.Election
	l distsync.Leadership
}

func newZKCandidate(r *run, name string, ttl time.Duration) (candidate, error) {
	d := &cuttableDialer{}
	s, err := zksync.Dial(r.ctx, r.env.zk.Servers(), zksync.WithTTL(ttl),
		zksync.WithDialer(d.dial))
	if err != nil {
		return nil, err
	}
	r.onClose(func() { _ = s.Close() })
	e, err := s.Election(name)
	if err != nil {
		return nil, err
	}
	return &zkCandidate{d: d, e: e}, nil
}

func (c *zkCandidate) campaign(ctx context.Context, value string) (err error) {
	c.l, err = c.e.Campaign(ctx, []byte(value))
	return err
}

func (c *zkCandidate) resign(ctx context.Context) error { return c.l.Release(ctx) }

// crash drops the connection as a dead process's kernel would, and lets
// no new one through: the server ends the session a session timeout
// later, and its ephemeral node with it.
func (c *zkCandidate) crash() { c.d.cut() }

// cuttableDialer dials ZooKeeper until cut, which closes the connections
// it made and fails every later dial.
type cuttableDialer struct {
	mu    sync.Mutex
	dead  bool
	conns []net.Conn
}

func (d *cuttableDialer) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		return nil, errors.New("the process crashed")
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *cuttableDialer) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dead = true
	for _, c := range d.conns {
		c.Close()
	}
}

// durations summarises failover times.
func durations(ds []time.Duration) result {
	slices.Sort(ds)
	return result{values: map[string]float64{
		"p50": ms(percentile(ds, 0.50)),
		"p99": ms(percentile(ds, 0.99)),
		"max": ms(ds[len(ds)-1]),
		"n":   float64(len(ds)),
	}}
}
