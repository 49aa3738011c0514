package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/internal/redisq"
	"github.com/go-zookeeper/zk"
	goredis "github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"io"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A stateFigure is one count read from a server: watchers, subscriptions,
// connections, keys or nodes.
type stateFigure struct {
	name  string
	value int
	// final marks a figure that only a closed client brings back (the
	// size of a client's connection pool): it is compared after Close.
	final bool
}

// serverState is what a server says clients left on it.
type serverState []stateFigure

func (s serverState) String() string {
	parts := make([]string, len(s))
	for i, f := range s {
		parts[i] = fmt.Sprintf("%s=%d", f.name, f.value)
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// diff lists the figures of got that differ from s, the baseline. With
// final unset (clients still open), it lists only figures above the
// baseline, and none marked final: an open client may end, later, a watch
// the baseline caught it holding, but it must not hold more.
func (s serverState) diff(got serverState, final bool) []string {
	var out []string
	for i, f := range s {
		if f.final && !final {
			continue
		}
		if i >= len(got) || got[i].name != f.name {
			out = append(out, fmt.Sprintf("%s missing", f.name))
			continue
		}
		if got[i].value > f.value || final && got[i].value != f.value {
			out = append(out, fmt.Sprintf("%s %d, baseline %d", f.name, got[i].value, f.value))
		}
	}
	return out
}

// goroutineSet is the process's goroutines, by ID, with their stacks.
// Goroutine IDs are never reused, so a goroutine not in a baseline set was
// started after it.
type goroutineSet map[uint64]string

var goroutineHeader = regexp.MustCompile(`^goroutine (\d+) `)

// goroutinesNow returns the goroutines running now, except the caller.
func goroutinesNow() goroutineSet {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	set := goroutineSet{}
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 {
			continue // the caller
		}
		m := goroutineHeader.FindStringSubmatch(g)
		if m == nil {
			continue
		}
		id, _ := strconv.ParseUint(m[1], 10, 64)
		set[id] = g
	}
	return set
}

// since returns the stacks of the goroutines of s not in base.
func (s goroutineSet) since(base goroutineSet) []string {
	var out []string
	for id, g := range s {
		if _, ok := base[id]; !ok {
			out = append(out, g)
		}
	}
	return out
}

// matching returns the stacks of s that contain fn, one after another.
func (s goroutineSet) matching(fn string) string {
	var out []string
	for _, g := range s {
		if strings.Contains(g, fn) {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// summarizeGoroutines groups stacks by the function each goroutine was started by
// (the "created by" line) and the function it is in, with counts.
func summarizeGoroutines(stacks []string) string {
	counts := map[string]int{}
	for _, g := range stacks {
		lines := strings.Split(g, "\n")
		top, created := "", ""
		if len(lines) > 1 {
			top = lines[1]
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "created by ") {
				created = l
			}
		}
		counts[top+" | "+created]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %4d × %s\n", counts[k], k)
	}
	return b.String()
}

// etcdMetricsClient keeps no connection open between requests, so that
// reading the metrics leaves no goroutine behind in the test process.
var etcdMetricsClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// etcdMetric reads one gauge of the etcd member from its own metrics
// endpoint (GET /metrics on its client URL).
func etcdMetric(t *testing.T, metric string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+etcdServer.Endpoints()[0]+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := etcdMetricsClient.Do(req)
	if err != nil {
		t.Fatalf("etcd metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("etcd metrics: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), metric+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("etcd metric %s: %q: %v", metric, v, err)
			}
			return int(f)
		}
	}
	t.Fatalf("etcd metrics: no %s in %d bytes", metric, len(body))
	return 0
}

// zkStateFourLetter sends a four-letter word to the ZooKeeper server and
// returns its answer.
func zkStateFourLetter(t *testing.T, word string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", zkServer.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, word); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("zookeeper %s: %v", word, err)
	}
	if strings.Contains(string(out), "is not executed because it is not in the whitelist") {
		t.Fatalf("zookeeper %s: %s", word, out)
	}
	return string(out)
}

var zkStateTotalWatches = regexp.MustCompile(`Total watches:(\d+)`)

// zkStateWatches returns the server's count of watches (wchs).
func zkStateWatches(t *testing.T) int {
	t.Helper()
	out := zkStateFourLetter(t, "wchs")
	m := zkStateTotalWatches.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("zookeeper wchs: unexpected answer %q", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// zkStateConnections returns the number of client connections the server lists
// (cons), the asking connection included.
func zkStateConnections(t *testing.T) int {
	t.Helper()
	n := 0
	for _, l := range strings.Split(zkStateFourLetter(t, "cons"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "/") {
			n++
		}
	}
	return n
}

// TestLifecycleStateReadersSeeLeftovers is the control of the lifecycle
// checks' readers: on every backend, a raw client deliberately leaves a
// watch (or subscription), a stray key (or node) and its connection
// behind, and the readers must see each of them and its goroutines; once
// the raw client cleans up and closes, they must read the baseline again.
func TestLifecycleStateReadersSeeLeftovers(t *testing.T) {
	for _, mk := range lifeBackends {
		t.Run(mk.name, func(t *testing.T) {
			b := mk.make(t)
			name := lifeName(t, b, "control")
			b.state(t, name) // the readers' own connections are up
			g0 := goroutinesNow()
			s0 := b.state(t, name)
			var undo func()
			var want []string
			switch b.name {
			case "etcd":
				undo, want = etcdLeaveBehind(t, name), []string{"watchers", "watch-streams", "keys"}
			case "redis":
				undo, want = redisLeaveBehind(t, name), []string{"connections", "subscriptions", "pattern-subscriptions", "keys"}
			case "zookeeper":
				undo, want = zkLeaveBehind(t, name), []string{"connections", "watches", "nodes"}
			}
			// The leftovers are seen, the server's figures within 10s.
			deadline := time.Now().Add(10 * time.Second)
			var s1 serverState
			for {
				s1 = b.state(t, name)
				if changed := s0.diff(s1, true); len(changed) == len(want) || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			changed := map[string]bool{}
			for i, f := range s0 {
				if s1[i].value != f.value {
					changed[f.name] = true
				}
			}
			for _, w := range want {
				if !changed[w] {
					t.Errorf("control: the reader did not see the %s left behind: %v -> %v", w, s0, s1)
				}
			}
			added := goroutinesNow().since(g0)
			// go-redis runs no goroutine per connection; the others do.
			if len(added) == 0 && b.name != "redis" {
				t.Error("control: no new goroutine seen while a raw client is open")
			}
			t.Logf("control %s: left behind: server %v -> %v, %d new goroutines", b.name, s0, s1, len(added))
			undo()
			s2, g2 := lifeSettle(t, b, name, s0, g0, true)
			t.Logf("control %s: cleaned up: server %v, %d new goroutines", b.name, s2, len(g2.since(g0)))
		})
	}
}

// TestLifecycleGoroutineCheckSeesLeak is the control of the goroutine
// check: a goroutine started after the baseline and still running is seen,
// with its stack, and is no longer once it has ended.
func TestLifecycleGoroutineCheckSeesLeak(t *testing.T) {
	g0 := goroutinesNow()
	stop := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		<-stop
	}()
	added := goroutinesNow().since(g0)
	if len(added) != 1 || !strings.Contains(added[0], "TestLifecycleGoroutineCheckSeesLeak") {
		t.Errorf("a leaked goroutine: the check saw %d new goroutines, want it alone:\n%s", len(added), summarizeGoroutines(added))
	}
	close(stop)
	<-ended
	deadline := time.Now().Add(5 * time.Second)
	for len(goroutinesNow().since(g0)) > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if added := goroutinesNow().since(g0); len(added) > 0 {
		t.Errorf("after the goroutine ended, the check still sees:\n%s", summarizeGoroutines(added))
	}
}

// etcdLeaveBehind opens a raw client that watches name's prefix and puts
// a stray key under it; undo deletes the key and closes the client.
func etcdLeaveBehind(t *testing.T, name string) (undo func()) {
	c, err := etcdServer.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wc := c.Watch(ctx, etcdq.Prefix(name), clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if r := <-wc; !r.Created {
		t.Fatalf("control watch: %v", r.Err())
	}
	key := etcdq.Prefix(name) + "stray"
	if _, err := c.Put(ctx, key, ""); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := c.Delete(ctx, key); err != nil {
			t.Error(err)
		}
		cancel()
		_ = c.Close()
	}
}

// redisLeaveBehind opens a raw client subscribed to name's channel and to a
// pattern, and sets a stray key of name; undo deletes the key and closes.
func redisLeaveBehind(t *testing.T, name string) (undo func()) {
	ctx := context.Background()
	c := goredis.NewClient(&goredis.Options{Addr: redisServer.Addr()})
	k := redisq.KeysFor(name)
	ps := c.Subscribe(ctx, k.Channel)
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ps.PSubscribe(ctx, k.Channel+"*"); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	stray := strings.TrimSuffix(k.Holders, "h") + "stray"
	if err := c.Set(ctx, stray, "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := c.Del(ctx, stray).Err(); err != nil {
			t.Error(err)
		}
		_ = ps.Close()
		_ = c.Close()
	}
}

// zkLeaveBehind opens a raw connection that creates a stray node under
// name's node and leaves an exists watch on a node that is not there;
// undo deletes the stray node and closes the connection.
func zkLeaveBehind(t *testing.T, name string) (undo func()) {
	c, _, err := zk.Connect(zkServer.Servers(), zkTestTimeout, zk.WithLogInfo(false), zk.WithLogger(quietZK{}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := zksync.NodePath(zksync.DefaultPrefix, name)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if _, err := c.Create(p[:i], nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				t.Fatal(err)
			}
		}
	}
	if _, err := c.Create(p+"/stray", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.ExistsW(p + "/absent"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := c.Delete(p+"/stray", -1); err != nil {
			t.Error(err)
		}
		if err := c.Delete(p, -1); err != nil {
			t.Error(err)
		}
		c.Close()
	}
}
