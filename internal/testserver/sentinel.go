package testserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Sentinel is a real Redis Sentinel (redis-server --sentinel) watching a
// RedisGroup with quorum 1, so that a test can trigger failovers. Tests
// reach it at Addr with go-redis's failover client and MasterName.
type Sentinel struct {
	r    *Redis
	dir  string
	name string
	g    *RedisGroup
}

// Sentinel timings: a master not answering for sentinelDownAfter is down;
// a failover not done within sentinelFailoverTimeout is given up.
const (
	sentinelDownAfter       = time.Second
	sentinelFailoverTimeout = 5 * time.Second
)

// StartSentinel starts a Sentinel watching the group's master (node 0,
// through its front) under the name name, and returns once it knows the
// master and every replica. Group.Stop stops it.
func (g *RedisGroup) StartSentinel(name string) (*Sentinel, error) {
	dir, err := os.MkdirTemp("", "distsync-sentinel-")
	if err != nil {
		return nil, fmt.Errorf("testserver: sentinel dir: %w", err)
	}
	_, master, _ := net.SplitHostPort(g.Fronts[0].Addr())
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]s 1\n"+
		"sentinel down-after-milliseconds %[1]s %[3]d\n"+
		"sentinel failover-timeout %[1]s %[4]d\n"+
		"sentinel parallel-syncs %[1]s 1\n",
		name, master, sentinelDownAfter.Milliseconds(), sentinelFailoverTimeout.Milliseconds())
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testserver: sentinel config: %w", err)
	}
	r, err := startRedis(func(port string) []string {
		return []string{conf, "--sentinel", "--bind", "127.0.0.1", "--port", port,
			"--daemonize", "no", "--protected-mode", "no", "--loglevel", "warning", "--logfile", "",
			"--dir", dir}
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Sentinel{r: r, dir: dir, name: name, g: g}
	g.sentinel = s
	// Sentinel reads its replicas' INFO every 10 s, and turns a former
	// master that still says it is one into a replica only 4 hello
	// periods (2 s each) after it first said so: a failed-over master
	// would be back as a replica some 20 s later. Redis 7's SENTINEL DEBUG
	// (meant for tests) shortens both periods.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := s.client()
	defer c.Close()
	if err := c.Process(ctx, goredis.NewCmd(ctx, "SENTINEL", "DEBUG", "info-period", 500, "publish-period", 250)); err != nil {
		return nil, fmt.Errorf("testserver: SENTINEL DEBUG: %w", err)
	}
	if err := s.WaitReady(replicaSyncTimeout); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr returns the Sentinel's address.
func (s *Sentinel) Addr() string { return s.r.Addr() }

// MasterName returns the name the Sentinel knows the group by.
func (s *Sentinel) MasterName() string { return s.name }

func (s *Sentinel) client() *goredis.SentinelClient {
	return goredis.NewSentinelClient(&goredis.Options{Addr: s.r.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
}

// Master returns the index of the node the Sentinel names as master.
func (s *Sentinel) Master(ctx context.Context) (int, error) {
	c := s.client()
	defer c.Close()
	a, err := c.GetMasterAddrByName(ctx, s.name).Result()
	if err != nil {
		return -1, fmt.Errorf("testserver: sentinel master: %w", err)
	}
	addr := net.JoinHostPort(a[0], a[1])
	i := s.g.Index(addr)
	if i < 0 {
		return -1, fmt.Errorf("testserver: sentinel names master %s, not a node's front", addr)
	}
	return i, nil
}

// ready reports why the Sentinel could not fail over now, or "".
func (s *Sentinel) ready(ctx context.Context) string {
	c := s.client()
	defer c.Close()
	m, err := c.Master(ctx, s.name).Result()
	if err != nil {
		return err.Error()
	}
	if m["flags"] != "master" {
		return "master flags " + m["flags"]
	}
	if m["failover-state"] != "" && m["failover-state"] != "none" {
		return "failover state " + m["failover-state"]
	}
	reps, err := c.Replicas(ctx, s.name).Result()
	if err != nil {
		return err.Error()
	}
	if len(reps) != len(s.g.Nodes)-1 {
		return fmt.Sprintf("%d replicas known, want %d", len(reps), len(s.g.Nodes)-1)
	}
	for _, r := range reps {
		if r["flags"] != "slave" || r["master-link-status"] != "ok" {
			return fmt.Sprintf("replica %s:%s flags %s link %s", r["ip"], r["port"], r["flags"], r["master-link-status"])
		}
	}
	return ""
}

// WaitReady waits until the Sentinel sees a healthy master and every other
// node as its replica with its link up: a failover can then pick one.
func (s *Sentinel) WaitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		why := s.ready(ctx)
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testserver: sentinel not ready after %v: %s", timeout, why)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Failover makes the Sentinel fail over now (SENTINEL FAILOVER: no
// agreement needed, the master need not be down) and waits until it names
// another master and that node is master. It returns the old and the new
// master's index. The old master, if it runs, is turned into a replica by
// the Sentinel afterwards; WaitReady waits for that.
func (s *Sentinel) Failover(timeout time.Duration) (from, to int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if from, err = s.Master(ctx); err != nil {
		return -1, -1, err
	}
	c := s.client()
	defer c.Close()
	if err := c.Failover(ctx, s.name).Err(); err != nil {
		return from, -1, fmt.Errorf("testserver: SENTINEL FAILOVER: %w", err)
	}
	for {
		to, err = s.Master(ctx)
		if err == nil && to != from {
			if role, _ := s.g.Role(to); role == "master" {
				return from, to, nil
			}
		}
		select {
		case <-ctx.Done():
			return from, to, fmt.Errorf("testserver: sentinel failover from node %d not done after %v (last: node %d, %v)", from, timeout, to, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop kills the Sentinel and removes its directory. It is idempotent.
func (s *Sentinel) Stop() {
	s.r.Stop()
	os.RemoveAll(s.dir)
}
