package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCLISemaphore runs three `distsync sem NAME -n 2` at once on each
// backend: at most two of their children run at once, and two do. The
// control, with -n 3, sees all three at once.
func TestCLISemaphore(t *testing.T) {
	for _, b := range cliBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			run := func(t *testing.T, name, limit string) []interval {
				f := filepath.Join(t.TempDir(), "intervals")
				env := b.direct("F="+f, "N=3")
				var wg sync.WaitGroup
				for i := range 3 {
					p := startCLI(t, env, "sem", name, "-n", limit, "--", "sh", "-c", intervalScript, "sh", strconv.Itoa(i))
					wg.Go(func() {
						if code := p.wait(time.Minute); code != 0 {
							t.Errorf("distsync sem %s -n %s: exit %d, want 0; stderr:\n%s", name, limit, code, p.stderr())
						}
					})
				}
				wg.Wait()
				if t.Failed() {
					t.FailNow()
				}
				return readIntervals(t, f)
			}
			name := cliName(t)
			if n := maxConcurrent(run(t, name, "2")); n != 2 {
				t.Errorf("sem -n 2: %d children at once, want 2", n)
			}
			if n := maxConcurrent(run(t, name+"-3", "3")); n != 3 {
				t.Errorf("control, sem -n 3: %d children at once, want 3", n)
			}
		})
	}
}

// TestCLIElect runs two `distsync elect NAME VALUE -- CMD` on each
// backend: the first leads and runs its child, `leader` prints its value
// (text and JSON); ending the leader's session stops its child (its
// distsync exits 172) and hands the leadership to the second, whose
// child then runs; once it resigns, `leader` exits 176 and prints nothing.
func TestCLIElect(t *testing.T) {
	for _, b := range cliBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			name := cliName(t)
			f := filepath.Join(dir, "leaders")
			child := []string{"--", "sh", "-c", `echo "lead $1" >> "$F"; echo $$ > "$P.$1"; exec sleep 100`, "sh"}
			endpoint, expire := b.expirable(t)
			first := startCLI(t, b.env(endpoint, "F="+f, "P="+filepath.Join(dir, "pid")), append([]string{"elect", name, "v1"}, append(child, "v1")...)...)
			pid1 := readPid(t, filepath.Join(dir, "pid.v1"))
			killGroupAtCleanup(t, pid1)
			second := startCLI(t, b.direct("F="+f, "P="+filepath.Join(dir, "pid")), append([]string{"elect", name, "v2"}, append(child, "v2")...)...)
			waitContenders(t, b, name, 2)

			if code, out, stderr := runCLI(t, b.direct(), "leader", name); code != 0 || strings.TrimSpace(out) != "v1" {
				t.Errorf("leader: exit %d, printed %q, want 0 and v1; stderr:\n%s", code, out, stderr)
			}
			code, out, stderr := runCLI(t, b.direct(), "leader", "-o", "json", name)
			var ld struct {
				Value string `json:"value"`
				Term  int64  `json:"term"`
			}
			if err := json.Unmarshal([]byte(out), &ld); code != 0 || err != nil || ld.Value != "v1" || ld.Term <= 0 {
				t.Errorf("leader -o json: exit %d, printed %q (%v), want value v1 and a term; stderr:\n%s", code, out, err, stderr)
			}

			if b.name == "redis" {
				// Redis has no session to end from outside but by
				// silencing it: the proxy's blackhole.
				t.Log("ending the leader's Redis entries by blackholing its connection")
			}
			expire(name)
			if code := first.wait(4 * b.ttl); code != exitLost {
				t.Errorf("the first leader after its session ended: exit %d, want %d; stderr:\n%s", code, exitLost, first.stderr())
			}
			if alive(pid1) {
				t.Errorf("the first leader's child %d still alive", pid1)
			}
			pid2 := readPid(t, filepath.Join(dir, "pid.v2"))
			killGroupAtCleanup(t, pid2)
			if got, _ := os.ReadFile(f); string(got) != "lead v1\nlead v2\n" {
				t.Errorf("children that led: %q, want v1 then v2", got)
			}
			if code, out, stderr := runCLI(t, b.direct(), "leader", name); code != 0 || strings.TrimSpace(out) != "v2" {
				t.Errorf("leader after the handover: exit %d, printed %q, want 0 and v2; stderr:\n%s", code, out, stderr)
			}

			second.signal(syscall.SIGTERM)
			if code := second.wait(10 * time.Second); code != 128+int(syscall.SIGTERM) {
				t.Errorf("the second leader after SIGTERM (forwarded to its sleep): exit %d, want %d", code, 128+int(syscall.SIGTERM))
			}
			if code, out, stderr := runCLI(t, b.direct(), "leader", name); code != exitNoLeader || out != "" {
				t.Errorf("leader with none: exit %d, printed %q, want %d and nothing; stderr:\n%s", code, out, exitNoLeader, stderr)
			}
		})
	}
}

// TestCLIObserve streams `distsync observe -o json NAME` on each backend
// while a candidate leads for a moment and resigns: the stream shows no
// leader, then the candidate's value with a term, then no leader again,
// one JSON object per line.
func TestCLIObserve(t *testing.T) {
	for _, b := range cliBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			name := cliName(t)
			obs := startCLI(t, b.direct(), "observe", "-o", "json", name)
			type change struct {
				Term  int64  `json:"term"`
				Value string `json:"value"`
				None  bool   `json:"none"`
				Time  string `json:"time"`
			}
			next := func(what string) change {
				t.Helper()
				l, ok := obs.line(20 * time.Second)
				if !ok {
					t.Fatalf("observe printed no line for %s; stderr:\n%s", what, obs.stderr())
				}
				var c change
				if err := json.Unmarshal([]byte(l), &c); err != nil {
					t.Fatalf("observe printed %q: %v", l, err)
				}
				if _, err := time.Parse(time.RFC3339Nano, c.Time); err != nil {
					t.Errorf("observe line %q: time: %v", l, err)
				}
				return c
			}
			if c := next("the start"); !c.None {
				t.Errorf("first change %+v, want none", c)
			}
			if code, _, stderr := runCLI(t, b.direct(), "elect", name, "observed", "--", "sleep", "0.5"); code != 0 {
				t.Fatalf("elect: exit %d; stderr:\n%s", code, stderr)
			}
			if c := next("the leader"); c.None || c.Value != "observed" || c.Term <= 0 {
				t.Errorf("change %+v, want the value observed and a term", c)
			}
			if c := next("the resignation"); !c.None {
				t.Errorf("change %+v, want none", c)
			}
			obs.signal(syscall.SIGTERM)
			if code := obs.wait(10 * time.Second); code != 0 && code != 128+int(syscall.SIGTERM) {
				t.Errorf("observe after SIGTERM: exit %d", code)
			}
		})
	}
}
