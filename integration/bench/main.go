// Command bench runs distsync's benchmark scenarios side by side with the
// reference libraries (etcd's concurrency package, redsync, bsm/redislock,
// rueidislock, go-zookeeper's zk.Lock) in one run, interleaved over rounds,
// and writes the report (BENCHMARKS.md) and its chart (an SVG the README
// embeds). It starts the servers it needs as child processes, as the tests
// do: an etcd member (etcd's server embedded in a small program),
// redis-server and ZooKeeper.
//
//	go run ./integration/bench            # full run, ~10 min on 2 cores
//	go run ./integration/bench -quick     # shorter rounds, report in /tmp
//
// The scenarios are:
//
//	S1 one client locking and releasing a free lock
//	S2 8 clients on one lock, 1 ms critical section
//	S3 a semaphore of limit 4, 16 clients, 10 ms critical section
//	S4 election failover: graceful (resign) and crash (TTL expiry)
//	S5 1, 8, 64 and 512 waiters queued on one lock, drained
//	S6 how fast a holder learns its lock was lost (etcd)
//	S7 an RWMutex with 8 readers and a writer
//
// Every scenario runs every library once per round; the libraries' order
// rotates from round to round, so that none always runs first (on a warm
// or cold server). S1 runs a backend's libraries in one job, taking turns
// of a few cycles each, so that a burst of load from elsewhere falls on
// all of them alike. Ratios are taken within a round, against the best
// reference of that round.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	goredis "github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/distsync/distsync/internal/testserver"
)

// config is what the flags set.
type config struct {
	quick    bool
	rounds   int
	out, svg string
	readme   string         // README whose summary table to update; "" for none
	only     string         // run only the scenarios whose ids are listed, e.g. "S1,S2"
	match    *regexp.Regexp // run only the entries whose "backend/library" matches
}

func main() {
	var c config
	flag.BoolVar(&c.quick, "quick", false, "shorter rounds and fewer samples, for development; the report goes to /tmp unless -out is given")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds: every scenario runs every library once per round (at least 2)")
	flag.StringVar(&c.out, "out", "", "report path (default BENCHMARKS.md, or /tmp/distsync-bench-quick.md with -quick)")
	flag.StringVar(&c.svg, "svg", "", "chart path (default docs/benchmarks.svg, or /tmp/distsync-bench-quick.svg with -quick)")
	flag.StringVar(&c.readme, "readme", "", "README whose summary table (between the bench:summary markers) to rewrite (default README.md on a full run of every scenario and library; none with -quick, -only or -match)")
	flag.StringVar(&c.only, "only", "", "comma-separated scenario ids to run (e.g. S1,S5); default all")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the harness process (the clients; the servers are child processes) to this file")
	match := flag.String("match", "", "run only the libraries whose \"backend/library\" matches this regular expression (e.g. ZooKeeper)")
	flag.Parse()
	if *match != "" {
		re, err := regexp.Compile(*match)
		if err != nil {
			log.Fatalf("bench: -match: %v", err)
		}
		c.match = re
	}
	log.SetFlags(log.Ltime)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log.Fatalf("bench: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatalf("bench: %v", err)
		}
		defer pprof.StopCPUProfile()
	}
	if err := benchMain(c, os.Args[1:]); err != nil {
		log.Printf("bench: %v", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func benchMain(c config, args []string) error {
	if c.rounds < 2 {
		return fmt.Errorf("-rounds %d: the report compares rounds, it needs at least 2", c.rounds)
	}
	if c.out == "" {
		c.out = "BENCHMARKS.md"
		if c.quick {
			c.out = filepath.Join(os.TempDir(), "distsync-bench-quick.md")
		}
	}
	if c.svg == "" {
		c.svg = filepath.Join("docs", "benchmarks.svg")
		if c.quick {
			c.svg = filepath.Join(os.TempDir(), "distsync-bench-quick.svg")
		}
	}
	if c.readme == "" && !c.quick && c.only == "" && c.match == nil {
		c.readme = "README.md"
	}
	scens, err := selectScenarios(c.only)
	if err != nil {
		return err
	}
	started := time.Now()
	env, err := startEnv()
	if err != nil {
		return err
	}
	defer env.stop()

	rep := runBench(env, c, params(c.quick), scens, args)
	rep.duration = time.Since(started)
	if err := rep.write(c.out, c.svg); err != nil {
		return err
	}
	log.Printf("wrote %s and %s in %v", c.out, c.svg, rep.duration.Round(time.Second))
	if c.readme != "" {
		if err := rep.updateReadme(c.readme); err != nil {
			return err
		}
		log.Printf("updated the summary in %s", c.readme)
	}
	if n := rep.failures(); n > 0 {
		return fmt.Errorf("%d runs failed; they are marked in %s", n, c.out)
	}
	return nil
}

// runBench warms the servers up and runs the scenarios' jobs, every
// entry once per round, rotating the entries' order from round to round;
// a job that runs its entries together gets them all at once, in that
// order.
func runBench(env *env, c config, p benchParams, scens []*scenario, args []string) *report {
	rep := newReport(c, args, env, p)
	log.Printf("warming up the servers")
	if err := warmUp(env, c.match, p); err != nil {
		rep.warmUpErr = err
		log.Printf("warm-up: %v", err)
	}
	for round := range c.rounds {
		for _, s := range scens {
			for _, j := range s.jobs(p) {
				var es []entry
				for _, e := range rotate(j.entries, round) {
					if c.match == nil || c.match.MatchString(j.backend+"/"+e.name) {
						es = append(es, e)
					}
				}
				if j.together != nil && len(es) > 0 {
					names := make([]string, len(es))
					for i, e := range es {
						names[i] = e.name
					}
					log.Printf("round %d/%d %s %s %s %s, together", round+1, c.rounds, s.id, j.backend, j.label, strings.Join(names, ", "))
					compactEtcd(env, j.backend)
					for i, res := range runTogether(env, j, es) {
						logResult(s, es[i], res)
						rep.add(s, j, es[i], round, res)
					}
					continue
				}
				for _, e := range es {
					log.Printf("round %d/%d %s %s %s %s", round+1, c.rounds, s.id, j.backend, j.label, e.name)
					compactEtcd(env, j.backend)
					res := runJob(env, j.timeout, e)
					logResult(s, e, res)
					rep.add(s, j, e, round, res)
				}
			}
		}
	}
	return rep
}

// compactEtcd compacts the etcd member's history before an etcd job. A
// production etcd compacts its history periodically; without it, the keys
// every earlier run left (distsync writes a new key per acquisition) would
// slow each later run's reads.
func compactEtcd(env *env, backend string) {
	if backend != "etcd" {
		return
	}
	if err := env.etcd.Compact(context.Background()); err != nil {
		log.Printf("compact etcd: %v", err)
	}
}

// logResult logs an entry's result, or its failure.
func logResult(s *scenario, e entry, res result) {
	if res.err != nil {
		log.Printf("  %s failed: %v", e.name, res.err)
	} else {
		log.Printf("  %s: %s", e.name, res.summary(s))
	}
}

// rotate returns xs rotated left by k.
func rotate[T any](xs []T, k int) []T {
	if len(xs) == 0 {
		return nil
	}
	k %= len(xs)
	return append(append([]T{}, xs[k:]...), xs[:k]...)
}

// env holds the servers and the uncounted clients the harness itself
// uses to look at them.
type env struct {
	etcd  *testserver.Etcd
	redis *testserver.Redis
	zk    *testserver.ZooKeeper

	etcdCli  *clientv3.Client
	redisCli *goredis.Client
	zkConn   *zk.Conn

	stops []func()
}

func startEnv() (*env, error) {
	e := &env{}
	fail := func(err error) (*env, error) {
		e.stop()
		return nil, err
	}
	log.Printf("starting an etcd member, redis-server and ZooKeeper")
	var err error
	if e.etcd, err = testserver.StartEtcd(); err != nil {
		return fail(err)
	}
	e.stops = append(e.stops, e.etcd.Stop)
	if e.redis, err = testserver.StartRedis(); err != nil {
		return fail(err)
	}
	e.stops = append(e.stops, e.redis.Stop)
	if e.zk, err = testserver.StartZooKeeper(); err != nil {
		return fail(err)
	}
	e.stops = append(e.stops, e.zk.Stop)

	if e.etcdCli, err = clientv3.New(clientv3.Config{Endpoints: e.etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()}); err != nil {
		return fail(err)
	}
	e.stops = append(e.stops, func() { e.etcdCli.Close() })
	e.redisCli = goredis.NewClient(&goredis.Options{Addr: e.redis.Addr()})
	e.stops = append(e.stops, func() { e.redisCli.Close() })
	if e.zkConn, _, err = zk.Connect(e.zk.Servers(), lockTTL, zk.WithLogInfo(false), zk.WithLogger(quietZK{})); err != nil {
		return fail(err)
	}
	e.stops = append(e.stops, e.zkConn.Close)
	return e, nil
}

func (e *env) stop() {
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	e.stops = nil
}

// A run is one library's run of one job: its context, its request
// counter and what to close after it.
type run struct {
	env    *env
	ctx    context.Context
	reqs   counter
	closer []func()
}

func (r *run) onClose(f func()) { r.closer = append(r.closer, f) }

// close closes what the run opened, newest first; calling it twice is
// harmless.
func (r *run) close() {
	for i := len(r.closer) - 1; i >= 0; i-- {
		r.closer[i]()
	}
	r.closer = nil
}

// runJob runs entry e of a job on fresh clients, within timeout, and
// closes the clients after.
func runJob(env *env, timeout time.Duration, e entry) result {
	return runEntries(env, timeout, 1, func(rs []*run) []result { return []result{e.run(rs[0])} })[0]
}

// runTogether runs the entries es of job j together (j.together), each on
// fresh clients of its own, within the job's timeout.
func runTogether(env *env, j job, es []entry) []result {
	return runEntries(env, j.timeout, len(es), func(rs []*run) []result { return j.together(rs, es) })
}

// runEntries gives n entries a run each, under one context bounded by
// timeout, calls f with them, and closes what they opened after. A panic
// or the timeout fails every result f did not fail.
func runEntries(env *env, timeout time.Duration, n int, f func(rs []*run) []result) (res []result) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rs := make([]*run, n)
	for i := range rs {
		rs[i] = &run{env: env, ctx: ctx}
	}
	defer func() {
		for _, r := range rs {
			r.close()
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			res = make([]result, n)
			for i := range res {
				res[i] = result{err: fmt.Errorf("panic: %v", p)}
			}
		}
	}()
	res = f(rs)
	for i, r := range rs {
		if k := r.reqs.kinds(); k != "" {
			log.Printf("  etcd requests: %s", k)
		}
		if res[i].err == nil && ctx.Err() != nil {
			res[i].err = fmt.Errorf("ran out of its %v: %w", timeout, ctx.Err())
		}
	}
	return res
}

// warmUp runs a few hundred lock cycles of every library before anything
// is measured: ZooKeeper's JIT takes that long to settle, and without it
// whichever library runs first pays for it (by up to 2x). It also drains
// the largest S5 queue once per library: the first time the JVM holds that
// many sessions it grows its heap and compiles their paths, and in round 1
// the library that ran first paid for that (0.80x one run, 1.01x and 1.15x
// the next rounds); and the first time this process runs that many
// goroutines, the runtime's starting stack size (which follows the
// average) and the heap grow, which put the etcd client memory per waiter
// of whichever library ran first in round 1 up to 1.5x its later rounds.
func warmUp(e *env, match *regexp.Regexp, p benchParams) error {
	var errs []error
	for _, l := range libs {
		if match != nil && !match.MatchString(l.backend+"/"+l.name) {
			continue
		}
		res := runJob(e, time.Minute, entry{run: func(r *run) result {
			ls, err := l.open(r, nextName("warmup"), 1)
			if err != nil {
				return result{err: err}
			}
			for range p.warmUpCycles {
				unlock, err := ls[0](r.ctx)
				if err != nil {
					return result{err: err}
				}
				if err := unlock(r.ctx); err != nil {
					return result{err: err}
				}
			}
			return result{}
		}})
		if res.err == nil {
			n := slices.Max(p.scaleSizes)
			res = runJob(e, 2*p.drainTimeout, entry{run: func(r *run) result { return drain(r, l, n, p.drainTimeout) }})
		}
		if res.err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", l.backend, l.name, res.err))
		}
	}
	return errors.Join(errs...)
}

// nameSeq makes lock names unique within the run.
var nameSeq atomic.Int64

func nextName(kind string) string {
	return fmt.Sprintf("bench-%s-%d", strings.ToLower(kind), nameSeq.Add(1))
}
