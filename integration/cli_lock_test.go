package integration

import (
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCLILockExcludes runs two `distsync lock NAME -- CMD` at once on each
// backend: their children never overlap. Each child waits, up to a
// second, for the other to start, so children that could overlap do: the
// control runs the same two on different names and sees them overlap.
func TestCLILockExcludes(t *testing.T) {
	for _, b := range cliBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			run := func(t *testing.T, names [2]string) []interval {
				f := filepath.Join(t.TempDir(), "intervals")
				env := b.direct("F="+f, "N=2")
				var wg sync.WaitGroup
				for i, name := range names {
					p := startCLI(t, env, "lock", name, "--", "sh", "-c", intervalScript, "sh", strconv.Itoa(i))
					wg.Go(func() {
						if code := p.wait(time.Minute); code != 0 {
							t.Errorf("distsync lock %s: exit %d, want 0; stderr:\n%s", name, code, p.stderr())
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
			ivs := run(t, [2]string{name, name})
			if n := maxConcurrent(ivs); n != 1 {
				t.Errorf("two `distsync lock %s` ran their children at once (%d overlapping): %v", name, n, ivs)
			}
			ctl := run(t, [2]string{name + "-a", name + "-b"})
			if n := maxConcurrent(ctl); n != 2 {
				t.Errorf("control: children under two different names did not overlap (%d at once): %v; the check cannot fail", n, ctl)
			}
		})
	}
}

// TestCLITryAndWait holds a name with `distsync lock NAME` (no command: it
// prints the token and holds until signalled) and checks, on each
// backend: --try exits with 171, or with --conflict-exit-code; --wait
// 300ms gives up after about that long with 171; the holder, signalled,
// releases and exits 0, and --try then succeeds.
func TestCLITryAndWait(t *testing.T) {
	for _, b := range cliBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			name := cliName(t)
			holder := startCLI(t, b.direct(), "lock", name)
			tok, ok := holder.line(20 * time.Second)
			if !ok {
				t.Fatalf("`distsync lock %s` printed no token; stderr:\n%s", name, holder.stderr())
			}
			if n, err := strconv.ParseInt(strings.TrimSpace(tok), 10, 64); err != nil || n <= 0 {
				t.Errorf("`distsync lock %s` printed %q, want the fencing token (a positive number)", name, tok)
			}

			if code, _, stderr := runCLI(t, b.direct(), "lock", "--try", name, "--", "true"); code != exitConflict {
				t.Errorf("lock --try while held: exit %d, want %d; stderr:\n%s", code, exitConflict, stderr)
			}
			if code, _, stderr := runCLI(t, b.direct(), "lock", "--try", "--conflict-exit-code", "9", name, "--", "true"); code != 9 {
				t.Errorf("lock --try --conflict-exit-code 9 while held: exit %d, want 9; stderr:\n%s", code, stderr)
			}
			// Flags from the environment, and after NAME.
			if code, _, stderr := runCLI(t, b.direct("DISTSYNC_TRY=true"), "lock", name, "--conflict-exit-code", "11", "--", "true"); code != 11 {
				t.Errorf("DISTSYNC_TRY=true lock NAME --conflict-exit-code 11 while held: exit %d, want 11; stderr:\n%s", code, stderr)
			}
			start := time.Now()
			code, _, stderr := runCLI(t, b.direct(), "lock", "--wait", "300ms", name, "--", "true")
			took := time.Since(start)
			if code != exitConflict {
				t.Errorf("lock --wait 300ms while held: exit %d, want %d; stderr:\n%s", code, exitConflict, stderr)
			}
			// Process start, session open and close come on top of the wait.
			if took < 300*time.Millisecond || took > 2500*time.Millisecond {
				t.Errorf("lock --wait 300ms gave up after %v, want about 300ms", took)
			}
			t.Logf("--wait 300ms: gave up after %v (process start to exit)", took.Round(time.Millisecond))

			holder.signal(syscall.SIGTERM)
			if code := holder.wait(20 * time.Second); code != 0 {
				t.Errorf("the holder after SIGTERM: exit %d, want 0; stderr:\n%s", code, holder.stderr())
			}
			if code, _, stderr := runCLI(t, b.direct(), "lock", "--try", name, "--", "true"); code != 0 {
				t.Errorf("lock --try after the holder released: exit %d, want 0; stderr:\n%s", code, stderr)
			}
		})
	}
}

// TestCLIRWLock runs `distsync rlock` and `wlock` on each backend: two
// readers' children run at once (which shows the check can see an
// overlap), a reader's and a writer's never do.
func TestCLIRWLock(t *testing.T) {
	for _, b := range cliBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			run := func(t *testing.T, name string, verbs [2]string) []interval {
				f := filepath.Join(t.TempDir(), "intervals")
				env := b.direct("F="+f, "N=2")
				var wg sync.WaitGroup
				for i, verb := range verbs {
					p := startCLI(t, env, verb, name, "--", "sh", "-c", intervalScript, "sh", strconv.Itoa(i))
					wg.Go(func() {
						if code := p.wait(time.Minute); code != 0 {
							t.Errorf("distsync %s %s: exit %d, want 0; stderr:\n%s", verb, name, code, p.stderr())
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
			if n := maxConcurrent(run(t, name, [2]string{"rlock", "rlock"})); n != 2 {
				t.Errorf("two rlock: %d children at once, want 2 (readers share)", n)
			}
			if n := maxConcurrent(run(t, name, [2]string{"rlock", "wlock"})); n != 1 {
				t.Errorf("rlock and wlock: %d children at once, want 1", n)
			}
		})
	}
}
