package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// treeScript is the child tree of the loss tests: a shell that records
// its pid (the process group's id), with a sleep in the background and
// one in the foreground.
const treeScript = `echo $$ > "$P"; sleep 100 & sleep 100; wait`

// aliveScript is the waiting distsync's child: first it lists which of the
// first child tree's processes ($PIDS) are still alive, into $ALIVE, then
// records when it started (ns) in $S.
const aliveScript = `for p in $PIDS; do s=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -d' ' -f1); [ -n "$s" ] && [ "$s" != Z ] && echo $p; done > "$ALIVE.tmp"; date +%s%N > "$S"; mv "$ALIVE.tmp" "$ALIVE"`

// TestCLILoss makes a holder lose its lock on each backend in three ways:
// its state deleted from outside, its session ended from outside
// (revoked, expired), and its connection cut. Each time the holder's
// child tree, grandchildren included, is gone, distsync exits 172 after
// logging the loss, and all of it happens before a second distsync,
// waiting on the name, starts its child.
func TestCLILoss(t *testing.T) {
	for _, b := range cliBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, mode := range []string{"delete", "expire", "cut"} {
				t.Run(mode, func(t *testing.T) {
					endpoint, act := b.endpoint(), func(name string) { b.deleteHolder(t, name) }
					switch mode {
					case "expire":
						var expire func(string)
						endpoint, expire = b.expirable(t)
						act = expire
					case "cut":
						var cut func()
						endpoint, cut = b.cuttable(t)
						act = func(string) { cut() }
					}
					testCLILoss(t, b, endpoint, mode == "cut", act)
				})
			}
		})
	}
}

// testCLILoss runs one loss: the holder on endpoint, lost by act.
func testCLILoss(t *testing.T, b cliBackend, endpoint string, viaShell bool, act func(name string)) {
	dir := t.TempDir()
	name := cliName(t)
	pidFile := filepath.Join(dir, "pid")
	args := []string{"lock", name, "--", "sh", "-c", treeScript}
	if viaShell {
		args = []string{"lock", "--shell", name, "--", treeScript}
	}
	holder := startCLI(t, b.env(endpoint, "P="+pidFile), args...)
	pgid := readPid(t, pidFile)
	killGroupAtCleanup(t, pgid)
	var tree []int
	cliWaitFor(t, 10*time.Second, "the child tree's three processes", func() bool {
		tree = groupPids(pgid)
		return len(tree) == 3
	})

	alivePath, startPath := filepath.Join(dir, "alive"), filepath.Join(dir, "start")
	var pids []string
	for _, p := range tree {
		pids = append(pids, strconv.Itoa(p))
	}
	waiter := startCLI(t, b.direct("PIDS="+strings.Join(pids, " "), "ALIVE="+alivePath, "S="+startPath),
		"lock", name, "--", "sh", "-c", aliveScript)
	waitContenders(t, b, name, 2)
	if _, err := os.Stat(startPath); err == nil {
		t.Fatal("the waiting distsync ran its child while the first held")
	}

	acted := time.Now()
	act(name)
	if code := holder.wait(4 * b.ttl); code != exitLost {
		t.Errorf("the holder: exit %d, want %d (lost); stderr:\n%s", code, exitLost, holder.stderr())
	}
	lost := lostAt(t, holder)
	checkTreeGone(t, pgid, tree, holder.exited)
	l, _ := holder.stderrLine("distsync: lost ")
	if !strings.Contains(l.text, name) || !strings.Contains(l.text, "stopping the command") {
		t.Errorf("loss log %q, want %q", l.text, "distsync: lost "+name+" (token T): <err>; stopping the command")
	}

	started := readNanos(t, startPath, 4*b.ttl)
	if code := waiter.wait(20 * time.Second); code != 0 {
		t.Errorf("the waiter: exit %d, want 0; stderr:\n%s", code, waiter.stderr())
	}
	t.Logf("after the act: holder logged the loss at +%v, exited at +%v; the waiter's child started at +%v",
		lost.Sub(acted).Round(time.Millisecond), holder.exited.Sub(acted).Round(time.Millisecond), started.Sub(acted).Round(time.Millisecond))
	if !lost.Before(started) {
		t.Errorf("the waiter's child started %v before the holder logged the loss", lost.Sub(started))
	}
	b2, err := os.ReadFile(alivePath)
	if err != nil {
		t.Fatal(err)
	}
	if still := strings.Fields(string(b2)); len(still) != 0 {
		t.Errorf("the waiter's child started while processes %v of the holder's child tree %v were alive", still, tree)
	}
}

// TestCLILossCheckCatchesALiveTree is the control of TestCLILoss's
// checks: the waiter's child, started while the first tree is alive,
// lists it, and groupPids sees it.
func TestCLILossCheckCatchesALiveTree(t *testing.T) {
	b := cliEtcd()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	holder := startCLI(t, b.direct("P="+pidFile), "lock", cliName(t)+"-a", "--", "sh", "-c", treeScript)
	pgid := readPid(t, pidFile)
	killGroupAtCleanup(t, pgid)
	var tree []string
	cliWaitFor(t, 10*time.Second, "the child tree's three processes", func() bool {
		tree = nil
		for _, p := range groupPids(pgid) {
			tree = append(tree, strconv.Itoa(p))
		}
		return len(tree) == 3
	})
	alivePath := filepath.Join(dir, "alive")
	code, _, stderr := runCLI(t, b.direct("PIDS="+strings.Join(tree, " "), "ALIVE="+alivePath, "S="+filepath.Join(dir, "start")),
		"lock", cliName(t)+"-b", "--", "sh", "-c", aliveScript)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	got, err := os.ReadFile(alivePath)
	if err != nil {
		t.Fatal(err)
	}
	if g := strings.Fields(string(got)); !slices.Equal(g, tree) {
		t.Errorf("the child listed %v alive, want %v", g, tree)
	}
	if !holder.running() {
		t.Errorf("holder exited early: %d", holder.code)
	}
}

// TestCLILossKillGrace: a child that ignores SIGTERM (and its sleep,
// which inherits the ignored signal) is killed with SIGKILL once
// --kill-grace has passed after the loss.
func TestCLILossKillGrace(t *testing.T) {
	b := cliEtcd()
	name := cliName(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	holder := startCLI(t, b.direct("P="+pidFile), "lock", "--kill-grace", "700ms", name, "--",
		"sh", "-c", `trap '' TERM; echo $$ > "$P"; sleep 100; wait`)
	pgid := readPid(t, pidFile)
	killGroupAtCleanup(t, pgid)
	var tree []int
	cliWaitFor(t, 10*time.Second, "the child's two processes", func() bool {
		tree = groupPids(pgid)
		return len(tree) == 2
	})
	acted := time.Now()
	b.deleteHolder(t, name)
	if code := holder.wait(10 * time.Second); code != exitLost {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, exitLost, holder.stderr())
	}
	lost := lostAt(t, holder)
	t.Logf("exited %v after the deletion, %v after the test read the loss log",
		holder.exited.Sub(acted).Round(time.Millisecond), holder.exited.Sub(lost).Round(time.Millisecond))
	// The loss comes after the deletion, and the test reads its log a
	// little after distsync wrote it: the first bounds the grace from
	// below, the second from above.
	if took := holder.exited.Sub(acted); took < 700*time.Millisecond {
		t.Errorf("distsync exited %v after the deletion, before the kill grace (700ms) had passed", took)
	}
	if took := holder.exited.Sub(lost); took > 2500*time.Millisecond {
		t.Errorf("distsync exited %v after the loss, want the kill grace (700ms) and little more", took)
	}
	checkTreeGone(t, pgid, tree, holder.exited)
}

// checkTreeGone checks that the processes of tree (the group pgid) are
// gone once distsync exited at exited. A SIGKILL sent just before the
// exit takes effect when the kernel next runs the process: a few
// milliseconds are allowed for that, not more.
func checkTreeGone(t *testing.T, pgid int, tree []int, exited time.Time) {
	t.Helper()
	deadline := exited.Add(200 * time.Millisecond)
	for {
		var left []int
		for _, p := range tree {
			if alive(p) {
				left = append(left, p)
			}
		}
		for _, p := range groupPids(pgid) {
			if !slices.Contains(left, p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes %v of the child tree %v still alive %v after distsync exited", left, tree, time.Since(exited).Round(time.Millisecond))
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
