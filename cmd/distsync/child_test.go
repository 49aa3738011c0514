package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// fakeLease is a lease the test ends by hand.
type fakeLease struct {
	done chan struct{}
	once sync.Once
	err  error
}

func newFakeLease() *fakeLease { return &fakeLease{done: make(chan struct{})} }

func (l *fakeLease) Done() <-chan struct{} { return l.done }

func (l *fakeLease) Err() error {
	select {
	case <-l.done:
		return l.err
	default:
		return nil
	}
}

func (l *fakeLease) lose() {
	l.once.Do(func() {
		l.err = distsync.Lost(distsync.LossDeleted, nil, "test")
		close(l.done)
	})
}

// runChild runs argv under l with sigs and returns the exit code and how
// long it took.
func runChild(t *testing.T, argv []string, l held, sigs <-chan os.Signal, grace time.Duration) (int, time.Duration, <-chan error) {
	t.Helper()
	lost := make(chan error, 1)
	c := &child{argv: argv, env: os.Environ(), grace: grace, log: os.Stderr, onLoss: func(err error) { lost <- err }}
	start := time.Now()
	code := c.run(l, sigs)
	return code, time.Since(start), lost
}

// waitFile waits until path has n lines and returns them.
func waitFile(t *testing.T, path string, n int) []string {
	t.Helper()
	lines := waitLines(path, n)
	if len(lines) < n {
		t.Fatalf("%s has %d lines after 5s, want %d", path, len(lines), n)
	}
	return lines
}

// waitLines waits up to 5 s until path has n lines, and returns its lines.
// Goroutines other than the test's use it.
func waitLines(path string, n int) []string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		lines := strings.Fields(string(b))
		if len(lines) >= n || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid is a process that has not exited (a zombie
// waiting for its parent counts as exited).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitDead waits until none of pids is alive.
func waitDead(t *testing.T, pids []string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for _, p := range pids {
		pid, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("pid %q: %v", p, err)
		}
		for alive(pid) {
			if time.Now().After(deadline) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("process %d still alive", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestChildExitCode(t *testing.T) {
	tests := []struct {
		argv []string
		want int
	}{
		{[]string{"true"}, 0},
		{[]string{"sh", "-c", "exit 7"}, 7},
		{[]string{"/bin/sh", "-c", "exit 3"}, 3},
		{[]string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
		{[]string{"sh", "-c", "kill -KILL $$"}, 128 + 9},
		{[]string{"/nonexistent/command"}, exitNoStart},
		{[]string{os.DevNull}, exitNoStart}, // not executable
	}
	for _, tt := range tests {
		if got, _, _ := runChild(t, tt.argv, newFakeLease(), nil, time.Second); got != tt.want {
			t.Errorf("%q: exit %d, want %d", tt.argv, got, tt.want)
		}
	}
}

func TestChildEnvironment(t *testing.T) {
	out := filepath.Join(t.TempDir(), "env")
	c := &child{
		argv:  []string{"sh", "-c", `printf '%s\n' "$DISTSYNC_NAME" "$DISTSYNC_TOKEN" "$DISTSYNC_BACKEND" "$DISTSYNC_HOLDER" "$KEPT" "${DISTSYNC_PASSWORD:-unset}" > ` + out},
		env:   childEnv([]string{"KEPT=yes", "DISTSYNC_TOKEN=stale", "DISTSYNC_PASSWORD=secret", "PATH=" + os.Getenv("PATH")}, "jobs/x", 42, "etcd", "host:1"),
		grace: time.Second,
		log:   os.Stderr,
	}
	if code := c.run(newFakeLease(), nil); code != 0 {
		t.Fatalf("exit %d", code)
	}
	got := waitFile(t, out, 6)
	want := []string{"jobs/x", "42", "etcd", "host:1", "yes", "unset"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("child saw %q, want %q", got, want)
	}
}

// On loss the whole group goes, grandchildren included, and run returns
// exitLost once the command exited.
func TestChildLossKillsGroup(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "pids")
	l := newFakeLease()
	go func() {
		waitLines(pids, 2)
		l.lose()
	}()
	code, took, lost := runChild(t, []string{"sh", "-c", "echo $$ >> " + pids + "; sleep 100 & echo $! >> " + pids + "; sleep 100; wait"}, l, nil, 2*time.Second)
	if code != exitLost {
		t.Errorf("exit %d, want %d", code, exitLost)
	}
	if took > time.Second {
		t.Errorf("took %v: SIGTERM should stop sh and sleep at once", took)
	}
	if err := <-lost; !errors.Is(err, distsync.ErrLost) {
		t.Errorf("onLoss got %v, want ErrLost", err)
	}
	waitDead(t, waitFile(t, pids, 2))
}

// A command that ignores SIGTERM is killed after the grace, with its
// children.
func TestChildIgnoringTermKilledAfterGrace(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "pids")
	l := newFakeLease()
	go func() {
		waitLines(pids, 2)
		l.lose()
	}()
	const grace = 300 * time.Millisecond
	code, took, _ := runChild(t, []string{"sh", "-c", "trap '' TERM; echo $$ >> " + pids + "; sleep 100 & echo $! >> " + pids + "; wait"}, l, nil, grace)
	if code != exitLost {
		t.Errorf("exit %d, want %d", code, exitLost)
	}
	if took < grace || took > grace+2*time.Second {
		t.Errorf("took %v, want about the grace %v", took, grace)
	}
	waitDead(t, waitFile(t, pids, 2))
}

// A grandchild that ignores SIGTERM outlives its parent, which exits on
// it: it is killed when the command exits, not after the grace.
func TestChildLossKillsLeftovers(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "pids")
	l := newFakeLease()
	go func() {
		waitLines(pids, 2)
		l.lose()
	}()
	code, took, _ := runChild(t, []string{"sh", "-c", "(trap '' TERM; sleep 100) & echo $$ >> " + pids + "; echo $! >> " + pids + "; wait"}, l, nil, 5*time.Second)
	if code != exitLost {
		t.Errorf("exit %d, want %d", code, exitLost)
	}
	if took > 2*time.Second {
		t.Errorf("took %v: the leftovers should be killed when the command exits", took)
	}
	waitDead(t, waitFile(t, pids, 2))
}

// Signals are forwarded to the group; the command's own exit code counts.
func TestChildForwardsSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT} {
		dir := t.TempDir()
		ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
		sigs := make(chan os.Signal, 1)
		go func() {
			waitLines(ready, 1)
			sigs <- sig
		}()
		name := strings.TrimPrefix(unixName(sig), "SIG")
		code, _, _ := runChild(t, []string{"sh", "-c", "trap 'echo " + name + " > " + got + "; exit 5' " + name + "; echo up > " + ready + "; while :; do sleep 0.05 2>/dev/null; done"}, newFakeLease(), sigs, time.Second)
		if code != 5 {
			t.Errorf("%v: exit %d, want 5", sig, code)
		}
		if b, _ := os.ReadFile(got); strings.TrimSpace(string(b)) != name {
			t.Errorf("%v: the command recorded %q", sig, b)
		}
	}
	// A command that does not trap it dies of it: 128+N.
	sigs := make(chan os.Signal, 1)
	sigs <- syscall.SIGTERM
	if code, _, _ := runChild(t, []string{"sleep", "100"}, newFakeLease(), sigs, time.Second); code != 128+15 {
		t.Errorf("sleep killed by a forwarded SIGTERM: exit %d, want 143", code)
	}
}

func unixName(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGTERM: "TERM", syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGQUIT: "QUIT"}[s]
}

// A normal exit leaves the rest of the group alone.
func TestChildNormalExitLeavesGroup(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "pids")
	code, _, _ := runChild(t, []string{"sh", "-c", "sleep 100 & echo $! > " + pids}, newFakeLease(), nil, time.Second)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	pid, _ := strconv.Atoi(waitFile(t, pids, 1)[0])
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	time.Sleep(50 * time.Millisecond)
	if !alive(pid) {
		t.Errorf("the background sleep %d was killed after a normal exit", pid)
	}
}
