package testserver

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// replicaSyncTimeout bounds how long a replica may take to come in sync.
const replicaSyncTimeout = 15 * time.Second

// A RedisGroup is a master and its replicas, each redis-server behind a
// RedisFront of its own through which everyone reaches it: clients,
// replicas (each node announces its front's port, so replication links
// run through fronts too, also after a failover) and Sentinel. Node 0
// starts as the master. Cutting replication at the master's front makes
// the replicas miss the writes that follow; promoting one of them then
// gives a master that lags, as in a failover to a stale replica.
type RedisGroup struct {
	Nodes  []*Redis
	Fronts []*RedisFront

	mu       sync.Mutex
	masterOf []string // the front port each node replicates at its (re)start; "" for none

	sentinel *Sentinel
}

// StartRedisGroup starts a master and n-1 replicas of it, and returns once
// every replica is in sync. The caller must call Stop.
func StartRedisGroup(n int) (*RedisGroup, error) {
	if n < 1 {
		return nil, fmt.Errorf("testserver: a redis group of %d nodes", n)
	}
	g := &RedisGroup{}
	for i := range n {
		f, err := newRedisFront()
		if err != nil {
			g.Stop()
			return nil, err
		}
		g.Fronts = append(g.Fronts, f)
		master := ""
		if i > 0 {
			master = g.Fronts[0].Port()
		}
		g.masterOf = append(g.masterOf, master)
		r, err := startRedis(func(port string) []string {
			g.mu.Lock()
			master := g.masterOf[i]
			g.mu.Unlock()
			args := []string{"--bind", "127.0.0.1", "--port", port,
				"--save", "", "--appendonly", "no", "--daemonize", "no",
				"--protected-mode", "no", "--loglevel", "warning", "--logfile", "",
				"--replica-announce-ip", "127.0.0.1", "--replica-announce-port", f.Port(),
				// A replica whose link is cut notices it at once (the
				// front closes the link), not after repl-timeout.
				"--repl-timeout", "5"}
			if master != "" {
				args = append(args, "--replicaof", "127.0.0.1", master)
			}
			return args
		})
		if err != nil {
			g.Stop()
			return nil, err
		}
		f.setTarget(r.Addr())
		g.Nodes = append(g.Nodes, r)
	}
	for i := 1; i < n; i++ {
		if err := g.WaitInSync(i, replicaSyncTimeout); err != nil {
			g.Stop()
			return nil, err
		}
	}
	return g, nil
}

// do runs one command on node i, directly (not through its front).
func (g *RedisGroup) do(ctx context.Context, i int, args ...any) *goredis.Cmd {
	c := goredis.NewClient(&goredis.Options{Addr: g.Nodes[i].Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
	defer c.Close()
	return c.Do(ctx, args...)
}

// info returns the fields of node i's INFO section.
func (g *RedisGroup) info(ctx context.Context, i int, section string) (map[string]string, error) {
	s, err := g.do(ctx, i, "INFO", section).Text()
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m, nil
}

// Role returns node i's replication role, "master" or "slave".
func (g *RedisGroup) Role(i int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := g.info(ctx, i, "replication")
	if err != nil {
		return "", err
	}
	return m["role"], nil
}

// WaitInSync waits until replica i's link to its master is up and it has
// every byte the master sent.
func (g *RedisGroup) WaitInSync(i int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	for {
		m, err := g.info(ctx, i, "replication")
		switch {
		case err != nil:
			last = err.Error()
		case m["role"] != "slave":
			last = "role " + m["role"]
		case m["master_link_status"] != "up":
			last = "link " + m["master_link_status"]
		default:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testserver: redis replica %d not in sync after %v: %s", i, timeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Promote makes node i a master that replicates nobody (REPLICAOF NO ONE),
// keeping the data it has, as an operator promoting a replica does. A
// Restart of the node keeps it a master.
func (g *RedisGroup) Promote(i int) error {
	g.mu.Lock()
	g.masterOf[i] = ""
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.do(ctx, i, "REPLICAOF", "NO", "ONE").Err(); err != nil {
		return fmt.Errorf("testserver: promote redis node %d: %w", i, err)
	}
	return nil
}

// Index returns the node whose front has address addr, or -1.
func (g *RedisGroup) Index(addr string) int {
	for i, f := range g.Fronts {
		if f.Addr() == addr {
			return i
		}
	}
	return -1
}

// Stop stops the Sentinel, the nodes and their fronts. It is idempotent.
func (g *RedisGroup) Stop() {
	if g.sentinel != nil {
		g.sentinel.Stop()
	}
	for _, f := range g.Fronts {
		f.Close()
	}
	for _, r := range g.Nodes {
		r.Stop()
	}
}
