package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCLIExitCodes: distsync exits with its child's exact code, 128+N
// when a signal N killed the child, and 175 when the command cannot be
// started.
func TestCLIExitCodes(t *testing.T) {
	b := cliEtcd()
	for _, c := range []struct {
		what string
		args []string
		want int
	}{
		{"argv", []string{"NAME", "--", "sh", "-c", "exit 7"}, 7},
		{"shell", []string{"--shell", "NAME", "--", "exit 3"}, 3},
		{"shell after NAME, words joined", []string{"NAME", "--shell", "--", "exit", "4"}, 4},
		{"no --", []string{"NAME", "sh", "-c", "exit 5"}, 5},
		{"success", []string{"NAME", "--", "true"}, 0},
		{"killed by SIGKILL", []string{"NAME", "--", "sh", "-c", "kill -KILL $$"}, 128 + 9},
		{"killed by SIGTERM", []string{"NAME", "--", "sh", "-c", "kill -TERM $$"}, 128 + 15},
		{"not found", []string{"NAME", "--", "/nonexistent/distsync-test-command"}, 175},
		{"not executable", []string{"NAME", "--", "/etc/passwd"}, 175},
		{"child code 171", []string{"NAME", "--", "sh", "-c", "exit 171"}, 171},
	} {
		t.Run(strings.ReplaceAll(c.what, " ", "_"), func(t *testing.T) {
			args := []string{"lock"}
			for _, a := range c.args {
				if a == "NAME" {
					a = cliName(t)
				}
				args = append(args, a)
			}
			if code, _, stderr := runCLI(t, b.direct(), args...); code != c.want {
				t.Errorf("distsync %s: exit %d, want %d; stderr:\n%s", strings.Join(args, " "), code, c.want, stderr)
			}
		})
	}
}

// TestCLISignalsForwarded sends SIGHUP and then SIGTERM to distsync: its
// child's shell, in its own process group, traps both and records them;
// distsync exits with the child's code.
func TestCLISignalsForwarded(t *testing.T) {
	b := cliEtcd()
	dir := t.TempDir()
	f, ready := filepath.Join(dir, "signals"), filepath.Join(dir, "ready")
	p := startCLI(t, b.direct("F="+f, "R="+ready), "lock", cliName(t), "--", "sh", "-c",
		`trap 'echo HUP >> "$F"' HUP; trap 'echo TERM >> "$F"; exit 5' TERM; echo $$ > "$R"; while :; do sleep 0.05; done`)
	pgid := readPid(t, ready)
	killGroupAtCleanup(t, pgid)
	if _, g, ok := procState(pgid); !ok || g != pgid {
		t.Errorf("the child %d is in process group %d, want its own", pgid, g)
	}
	if _, g, _ := procState(p.cmd.Process.Pid); g == pgid {
		t.Errorf("distsync is in its child's process group")
	}
	p.signal(syscall.SIGHUP)
	cliWaitFor(t, 5*time.Second, "the child's HUP trap", func() bool {
		b, _ := os.ReadFile(f)
		return strings.Contains(string(b), "HUP")
	})
	if !p.running() {
		t.Fatalf("distsync exited on SIGHUP (code %d) while its child went on", p.code)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 5 {
		t.Errorf("exit %d, want the child's 5; stderr:\n%s", code, p.stderr())
	}
	got, _ := os.ReadFile(f)
	if string(got) != "HUP\nTERM\n" {
		t.Errorf("the child recorded %q, want HUP then TERM, once each", got)
	}
	// The lock was released: --try gets it.
	if code, _, stderr := runCLI(t, b.direct(), "lock", "--try", cliName(t), "--", "true"); code != 0 {
		t.Errorf("lock --try after: exit %d; stderr:\n%s", code, stderr)
	}
}

// TestCLIChildEnv checks on each backend the environment the child sees:
// DISTSYNC_NAME, DISTSYNC_TOKEN (what inspect shows as the holder's
// token), DISTSYNC_BACKEND and DISTSYNC_HOLDER (the identity), with the
// command configured by flags only.
func TestCLIChildEnv(t *testing.T) {
	for _, b := range cliBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			name := cliName(t)
			envFile, goFile := filepath.Join(dir, "env"), filepath.Join(dir, "go")
			flags := []string{"--backend", b.name, "--endpoints", b.endpoint(), "--ttl", b.ttl.String(), "--identity", "env-test-holder"}
			p := startCLI(t, []string{"E=" + envFile, "G=" + goFile}, append(append([]string{"lock"}, flags...), name, "--", "sh", "-c",
				`env | grep '^DISTSYNC_' | sort > "$E.tmp"; mv "$E.tmp" "$E"; i=0; while [ ! -e "$G" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done`)...)
			got := map[string]string{}
			for _, l := range strings.Split(strings.TrimSpace(readFileWhen(t, envFile, 20*time.Second)), "\n") {
				k, v, _ := strings.Cut(l, "=")
				got[k] = v
			}
			code, out, stderr := runCLI(t, nil, append(append([]string{"inspect", "-o", "json"}, flags...), name)...)
			if code != 0 {
				t.Fatalf("inspect: exit %d; stderr:\n%s", code, stderr)
			}
			var st cliStatus
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatalf("inspect -o json: %v:\n%s", err, out)
			}
			if len(st.Holders) != 1 {
				t.Fatalf("inspect shows holders %+v, want one", st.Holders)
			}
			want := map[string]string{
				"DISTSYNC_NAME":    name,
				"DISTSYNC_TOKEN":   strconv.FormatInt(st.Holders[0].Token, 10),
				"DISTSYNC_BACKEND": b.name,
				"DISTSYNC_HOLDER":  "env-test-holder",
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("the child's %s=%q, want %q", k, got[k], v)
				}
			}
			if len(got) != len(want) {
				t.Errorf("the child sees DISTSYNC_ variables %v, want only %v", got, want)
			}
			if err := os.WriteFile(goFile, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(20 * time.Second); code != 0 {
				t.Errorf("exit %d; stderr:\n%s", code, p.stderr())
			}
		})
	}
}

// TestCLIMinHold: with --min-hold 1s, a child that ends at once still
// holds the lock for a second: a --try during it gets 171, one after it
// succeeds.
func TestCLIMinHold(t *testing.T) {
	b := cliEtcd()
	name := cliName(t)
	ran := filepath.Join(t.TempDir(), "ran")
	start := time.Now()
	p := startCLI(t, b.direct(), "lock", "--min-hold", "1s", name, "--", "touch", ran)
	cliWaitFor(t, 20*time.Second, "the child", func() bool { _, err := os.Stat(ran); return err == nil })
	ranAt := time.Now()
	if code, _, stderr := runCLI(t, b.direct(), "lock", "--try", name, "--", "true"); code != exitConflict {
		t.Errorf("--try %v after the child ran: exit %d, want %d; stderr:\n%s", time.Since(ranAt).Round(time.Millisecond), code, exitConflict, stderr)
	}
	if code := p.wait(20 * time.Second); code != 0 {
		t.Errorf("exit %d, want 0; stderr:\n%s", code, p.stderr())
	}
	if took := p.exited.Sub(ranAt); took < 900*time.Millisecond {
		t.Errorf("distsync exited %v after its child ran (%v after its start), want at least the min hold of 1s", took, p.exited.Sub(start))
	}
	if code, _, stderr := runCLI(t, b.direct(), "lock", "--try", name, "--", "true"); code != 0 {
		t.Errorf("--try after the min hold: exit %d, want 0; stderr:\n%s", code, stderr)
	}
}

// cliStatus is inspect's JSON (distsync.Status).
type cliStatus struct {
	Name    string       `json:"name"`
	Limit   int64        `json:"limit"`
	Holders []cliHolding `json:"holders"`
	Waiters []cliHolding `json:"waiters"`
}

type cliHolding struct {
	Token    int64   `json:"token"`
	Identity string  `json:"identity"`
	Mode     string  `json:"mode"`
	Weight   int64   `json:"weight"`
	Since    *string `json:"since"`
	TTLms    *int64  `json:"ttl_ms"`
}
