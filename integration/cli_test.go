package integration

// The end-to-end tests of the distsync command (cli_*_test.go) run the
// built binary against the shared servers, with real child processes.
// This file holds their helpers: the build, a running distsync with its
// output, the backends as the command sees them, and /proc lookups.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/internal/redisq"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The command's reserved exit codes (cmd/distsync's doc).
const (
	exitConflict = 171
	exitLost     = 172
	exitBackend  = 173
	exitUsage    = 174
	exitNoLeader = 176
	exitNoHolder = 177
)

var (
	distsyncOnce sync.Once
	distsyncBin  string
	distsyncErr  error
)

// distsyncPath builds cmd/distsync once per test binary and returns its
// path. DISTSYNC_TEST_BINARY names a binary to test instead (a modified
// build, to see the tests catch what it breaks).
func distsyncPath(t testing.TB) string {
	t.Helper()
	distsyncOnce.Do(func() {
		if bin := os.Getenv("DISTSYNC_TEST_BINARY"); bin != "" {
			distsyncBin = bin
			return
		}
		dir, err := os.MkdirTemp("", "distsync-cli-")
		if err != nil {
			distsyncErr = err
			return
		}
		distsyncBin = filepath.Join(dir, "distsync")
		out, err := exec.Command("go", "build", "-o", distsyncBin, "github.com/distsync/distsync/cmd/distsync").CombinedOutput()
		if err != nil {
			distsyncErr = errors.New("go build cmd/distsync: " + err.Error() + ": " + string(out))
		}
	})
	if distsyncErr != nil {
		t.Fatal(distsyncErr)
	}
	return distsyncBin
}

// cliBaseEnv is the test process's environment without any DISTSYNC_
// variable, so that only what a test sets reaches the command.
func cliBaseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DISTSYNC_") {
			env = append(env, kv)
		}
	}
	return env
}

// A stampedLine is a line of output and when the test read it.
type stampedLine struct {
	at   time.Time
	text string
}

// cliProc is a running distsync and what it printed.
type cliProc struct {
	t    *testing.T
	args []string
	cmd  *exec.Cmd

	out  chan string // stdout lines, in order
	mu   sync.Mutex
	errs []stampedLine // stderr lines
	all  []string      // stdout lines

	readers sync.WaitGroup // the stdout and stderr readers
	done    chan struct{}
	code    int
	exited  time.Time
}

// startCLI starts distsync with args and the environment cliBaseEnv plus
// env. It is killed at cleanup if still running.
func startCLI(t *testing.T, env []string, args ...string) *cliProc {
	t.Helper()
	bin := distsyncPath(t)
	p := &cliProc{t: t, args: args, out: make(chan string, 100), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(cliBaseEnv(), env...)
	// Pipes of our own (files, not writers): Wait then returns when
	// distsync exits, even while a process it leaked still holds them.
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = outW, errW
	start := time.Now()
	err = p.cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		t.Fatal(err)
	}
	p.readers.Add(2)
	go func() {
		defer p.readers.Done()
		defer outR.Close()
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			p.mu.Lock()
			p.all = append(p.all, sc.Text())
			p.mu.Unlock()
			select {
			case p.out <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		defer p.readers.Done()
		defer errR.Close()
		sc := bufio.NewScanner(errR)
		for sc.Scan() {
			p.mu.Lock()
			p.errs = append(p.errs, stampedLine{time.Now(), sc.Text()})
			p.mu.Unlock()
		}
	}()
	go func() {
		_ = p.cmd.Wait()
		p.exited = time.Now()
		ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			p.code = 128 + int(ws.Signal())
		} else {
			p.code = ws.ExitStatus()
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("distsync %s (started %s, exit %d) stderr:\n%s", strings.Join(args, " "), start.Format("15:04:05.000"), p.code, p.stderr())
		}
	})
	return p
}

// wait waits up to d for distsync to exit and returns its exit code
// (128+N when killed by signal N); it fails t if distsync still runs.
func (p *cliProc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		p.t.Fatalf("distsync %s still runs after %v; stderr:\n%s", strings.Join(p.args, " "), d, p.stderr())
		return -1
	}
}

// running reports whether distsync has not exited yet.
func (p *cliProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *cliProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to distsync: %v", sig, err)
	}
}

// line waits up to d for distsync's next stdout line.
func (p *cliProc) line(d time.Duration) (string, bool) {
	select {
	case l := <-p.out:
		return l, true
	case <-time.After(d):
		return "", false
	}
}

func (p *cliProc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.errs {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}

func (p *cliProc) stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.all, "\n")
}

// stderrLine returns the first stderr line containing s.
func (p *cliProc) stderrLine(s string) (stampedLine, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.errs {
		if strings.Contains(l.text, s) {
			return l, true
		}
	}
	return stampedLine{}, false
}

// runCLI runs distsync to its end (at most a minute) and returns its exit
// code, stdout and stderr.
func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := startCLI(t, env, args...)
	code = p.wait(time.Minute)
	p.drain(5 * time.Second)
	return code, p.stdout(), p.stderr()
}

// drain waits up to d for distsync's output to end: the pipes close once
// no process holds them (a leaked child holds them on).
func (p *cliProc) drain(d time.Duration) bool {
	ended := make(chan struct{})
	go func() {
		p.readers.Wait()
		close(ended)
	}()
	select {
	case <-ended:
		return true
	case <-time.After(d):
		return false
	}
}

// A cliBackend is a backend as the command reaches it.
type cliBackend struct {
	name     string // DISTSYNC_BACKEND
	endpoint func() string
	ttl      time.Duration // DISTSYNC_TTL the tests use

	// keys lists the contenders of name (holders and waiters).
	keys func(t *testing.T, name string) []string
	// deleteHolder deletes the holder's state of name from outside, as an
	// operator would.
	deleteHolder func(t *testing.T, name string)
	// expirable returns an endpoint for a distsync whose session expire,
	// called once it holds name, ends from outside as an expiry would:
	// etcd revokes its lease, ZooKeeper closes its session, and Redis,
	// which has no session, stops passing its renewals (a blackhole)
	// until its entries expire on the server.
	expirable func(t *testing.T) (endpoint string, expire func(name string))
	// cuttable returns an endpoint through a proxy, and its Cut.
	cuttable func(t *testing.T) (endpoint string, cut func())
}

// env is the environment that points distsync at endpoint.
func (b cliBackend) env(endpoint string, more ...string) []string {
	return append([]string{
		"DISTSYNC_BACKEND=" + b.name,
		"DISTSYNC_ENDPOINTS=" + endpoint,
		"DISTSYNC_TTL=" + b.ttl.String(),
	}, more...)
}

// direct is env on the shared server itself.
func (b cliBackend) direct(more ...string) []string { return b.env(b.endpoint(), more...) }

func cliBackends() []cliBackend {
	return []cliBackend{cliEtcd(), cliRedis(), cliZooKeeper()}
}

func cliEtcd() cliBackend {
	return cliBackend{
		name:     "etcd",
		endpoint: func() string { return strings.Join(etcdServer.Endpoints(), ",") },
		ttl:      2 * time.Second,
		keys: func(t *testing.T, name string) []string {
			return etcdKeysOf(t, etcdServer.Client(t), name)
		},
		deleteHolder: func(t *testing.T, name string) {
			kv := etcdHolderKV(t, name)
			if _, err := etcdServer.Client(t).Delete(context.Background(), string(kv.Key)); err != nil {
				t.Fatal(err)
			}
		},
		expirable: func(t *testing.T) (string, func(string)) {
			return strings.Join(etcdServer.Endpoints(), ","), func(name string) {
				kv := etcdHolderKV(t, name)
				if _, err := etcdServer.Client(t).Revoke(context.Background(), clientv3.LeaseID(kv.Lease)); err != nil {
					t.Fatal(err)
				}
			}
		},
		cuttable: func(t *testing.T) (string, func()) {
			p := distsynctest.NewProxy(t, etcdServer.Endpoints()[0])
			return p.Addr(), p.Cut
		},
	}
}

// etcdHolderKV returns the key of name's holder: its contender created
// first.
func etcdHolderKV(t *testing.T, name string) struct {
	Key   []byte
	Lease int64
} {
	t.Helper()
	resp, err := etcdServer.Client(t).Get(context.Background(), etcdq.Prefix(name), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var best struct {
		Key   []byte
		Lease int64
	}
	var rev int64
	for _, kv := range resp.Kvs {
		if etcdq.IsContender(etcdq.Prefix(name), kv.Key) && (rev == 0 || kv.CreateRevision < rev) {
			rev = kv.CreateRevision
			best.Key, best.Lease = kv.Key, kv.Lease
		}
	}
	if rev == 0 {
		t.Fatalf("%q has no holder", name)
	}
	return best
}

func cliRedis() cliBackend {
	return cliBackend{
		name:     "redis",
		endpoint: func() string { return redisServer.Addr() },
		ttl:      2 * time.Second,
		keys: func(t *testing.T, name string) []string {
			m, err := redisq.Members(context.Background(), redisClient(t), name)
			if err != nil {
				t.Fatal(err)
			}
			return m
		},
		deleteHolder: func(t *testing.T, name string) {
			// As redisq.DeleteMember does: plain ZREM and HDEL, no script,
			// nobody woken.
			ctx := context.Background()
			c := redisClient(t)
			k := redisq.KeysFor(name)
			hs, err := c.ZRange(ctx, k.Holders, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(hs) != 1 {
				t.Fatalf("%q has holders %v, want one", name, hs)
			}
			if err := c.ZRem(ctx, k.Holders, hs[0]).Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.HDel(ctx, k.Tokens, hs[0]).Err(); err != nil {
				t.Fatal(err)
			}
		},
		expirable: func(t *testing.T) (string, func(string)) {
			p := distsynctest.NewProxy(t, redisServer.Addr())
			return p.Addr(), func(string) { p.Blackhole() }
		},
		cuttable: func(t *testing.T) (string, func()) {
			p := distsynctest.NewProxy(t, redisServer.Addr())
			return p.Addr(), p.Cut
		},
	}
}

func cliZooKeeper() cliBackend {
	return cliBackend{
		name:     "zookeeper",
		endpoint: func() string { return zkServer.Addr() },
		ttl:      zkTestTimeout,
		keys:     zkKeys,
		deleteHolder: func(t *testing.T, name string) {
			if err := zkAdmin(t).Delete(zkHolderPath(t, name), -1); err != nil {
				t.Fatal(err)
			}
		},
		expirable: func(t *testing.T) (string, func(string)) {
			// The holder is a child process: its session is found by its
			// node's owner, and the kit's proxy knows its password.
			return zkServer.Addr(), func(name string) {
				_, st, err := zkAdmin(t).Get(zkHolderPath(t, name))
				if err != nil {
					t.Fatal(err)
				}
				zkServer.ExpireSession(t, st.EphemeralOwner)
			}
		},
		cuttable: func(t *testing.T) (string, func()) {
			p := distsynctest.NewProxy(t, zkServer.Addr())
			return p.Addr(), p.Cut
		},
	}
}

// zkHolderPath returns the path of name's holder: the child with the
// lowest sequence number.
func zkHolderPath(t *testing.T, name string) string {
	t.Helper()
	children := zkKeys(t, name)
	if len(children) == 0 {
		t.Fatalf("%q has no holder", name)
	}
	seq := func(c string) string { return c[max(len(c)-10, 0):] }
	sort.Slice(children, func(i, j int) bool { return seq(children[i]) < seq(children[j]) })
	p, err := zksync.NodePath(zksync.DefaultPrefix, name)
	if err != nil {
		t.Fatal(err)
	}
	return p + "/" + children[0]
}

// cliName is a distsync name of the test's own.
func cliName(t *testing.T) string { return "cli/" + t.Name() }

// cliWaitFor polls cond every 10 ms for up to d, and fails t with what if it
// never holds.
func cliWaitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitContenders waits until name has n contenders (holders and waiters).
func waitContenders(t *testing.T, b cliBackend, name string, n int) {
	t.Helper()
	cliWaitFor(t, 20*time.Second, fmt.Sprintf("%d contenders of %q", n, name), func() bool { return len(b.keys(t, name)) == n })
}

// readFileWhen waits up to d for path to hold a complete line and returns
// its content.
func readFileWhen(t *testing.T, path string, d time.Duration) string {
	t.Helper()
	var s string
	cliWaitFor(t, d, "a line in "+filepath.Base(path), func() bool {
		b, err := os.ReadFile(path)
		s = string(b)
		return err == nil && strings.HasSuffix(s, "\n")
	})
	return s
}

// readPid waits for the pid a child wrote to path.
func readPid(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(readFileWhen(t, path, 20*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// readNanos reads the Unix time in ns (date +%s%N) a child wrote to path.
func readNanos(t *testing.T, path string, d time.Duration) time.Time {
	t.Helper()
	ns, err := strconv.ParseInt(strings.TrimSpace(readFileWhen(t, path, d)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(0, ns)
}

// procState returns the state letter and the process group of pid from
// /proc, ok false when there is no such process.
func procState(pid int) (state string, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return "", 0, false
	}
	pgrp, _ = strconv.Atoi(f[2])
	return f[0], pgrp, true
}

// alive reports whether pid is a process that has not exited (a zombie
// has).
func alive(pid int) bool {
	st, _, ok := procState(pid)
	return ok && st != "Z"
}

// groupPids lists the live processes of process group pgid.
func groupPids(pgid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, g, ok := procState(pid); ok && g == pgid && st != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killGroupAtCleanup kills what is left of process group pgid, and the
// process pgid itself (in case a broken build did not make it a group
// leader), at cleanup: a failing test leaks no child. A pid of another
// process by then (the same pid, a later start) is left alone: the group
// is gone, as a pid is not reused while its group exists.
func killGroupAtCleanup(t *testing.T, pgid int) {
	started := procStart(pgid)
	t.Cleanup(func() {
		if now := procStart(pgid); now != "" && now != started {
			return
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		_ = syscall.Kill(pgid, syscall.SIGKILL)
	})
}

// procStart returns the start time of pid (in clock ticks since boot, as
// /proc shows it), "" when there is no such process.
func procStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19] // field 22 of stat; f starts at field 3
}

// An interval is one child's run, as it recorded it.
type interval struct {
	id         string
	start, end int64
}

// readIntervals parses the lines "start ID NS" and "end ID NS" children
// appended to path.
func readIntervals(t *testing.T, path string) []interval {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*interval{}
	var order []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("bad line %q in %s", l, path)
		}
		ns, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		iv := byID[f[1]]
		if iv == nil {
			iv = &interval{id: f[1]}
			byID[f[1]] = iv
			order = append(order, f[1])
		}
		switch f[0] {
		case "start":
			iv.start = ns
		case "end":
			iv.end = ns
		}
	}
	var ivs []interval
	for _, id := range order {
		iv := *byID[id]
		if iv.start == 0 || iv.end == 0 {
			t.Fatalf("child %s did not record both its start and end in %s:\n%s", id, path, b)
		}
		ivs = append(ivs, iv)
	}
	return ivs
}

// maxConcurrent returns the most intervals that were running at once.
func maxConcurrent(ivs []interval) int {
	type ev struct {
		at    int64
		delta int
	}
	var evs []ev
	for _, iv := range ivs {
		evs = append(evs, ev{iv.start, 1}, ev{iv.end, -1})
	}
	// Ends before starts at the same instant: touching is no overlap.
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at != evs[j].at {
			return evs[i].at < evs[j].at
		}
		return evs[i].delta < evs[j].delta
	})
	n, most := 0, 0
	for _, e := range evs {
		n += e.delta
		most = max(most, n)
	}
	return most
}

// intervalScript is a child that records its interval in $F under the id
// $1: it waits, up to a second, for $N children in all to have started,
// so that children that could run at once do.
const intervalScript = `echo "start $1 $(date +%s%N)" >> "$F"
until=$(($(date +%s%N) + 1000000000))
while [ "$(grep -c '^start' "$F")" -lt "$N" ] && [ "$(date +%s%N)" -lt $until ]; do sleep 0.01; done
echo "end $1 $(date +%s%N)" >> "$F"`

// lostAt returns when distsync reported the loss on stderr: the time in
// the log record if it has one, else when the test read the line.
func lostAt(t *testing.T, p *cliProc) time.Time {
	t.Helper()
	l, ok := p.stderrLine("distsync: lost ")
	if !ok {
		t.Fatalf("distsync logged no loss (want %q); stderr:\n%s", "distsync: lost NAME (token T): ...", p.stderr())
	}
	if m := regexp.MustCompile(`time=(\S+)`).FindStringSubmatch(l.text); m != nil {
		if at, err := time.Parse(time.RFC3339Nano, strings.Trim(m[1], `"`)); err == nil {
			return at
		}
	}
	return l.at
}
