package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCLIInspectUnlock checks on each backend, while one distsync holds a
// name and another waits: inspect's text table and JSON; unlock without
// --force (174) and with an unknown holder (177); then `unlock --force
// NAME TOKEN` stops the holder's child (its distsync exits 172) and lets
// the waiter run its own.
func TestCLIInspectUnlock(t *testing.T) {
	for _, b := range cliBackends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			name := cliName(t)
			pidFile, ran := filepath.Join(dir, "pid"), filepath.Join(dir, "ran")
			holder := startCLI(t, b.direct("P="+pidFile), "lock", "--identity", "cli-holder", name, "--",
				"sh", "-c", `echo $$ > "$P"; exec sleep 100`)
			pgid := readPid(t, pidFile)
			killGroupAtCleanup(t, pgid)
			waiter := startCLI(t, b.direct(), "lock", "--identity", "cli-waiter", name, "--", "touch", ran)
			waitContenders(t, b, name, 2)

			code, out, stderr := runCLI(t, b.direct(), "inspect", name)
			if code != 0 {
				t.Fatalf("inspect: exit %d; stderr:\n%s", code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) < 3 || !slices.Equal(strings.Fields(lines[0]), strings.Fields("ROLE TOKEN IDENTITY MODE WEIGHT AGE TTL")) {
				t.Fatalf("inspect printed:\n%s\nwant the header ROLE TOKEN IDENTITY MODE WEIGHT AGE TTL, a holder and a waiter", out)
			}
			h, w := strings.Fields(lines[1]), strings.Fields(lines[2])
			if len(h) != 7 || h[0] != "holder" || h[2] != "cli-holder" || len(w) != 7 || w[0] != "waiter" || w[2] != "cli-waiter" {
				t.Errorf("inspect rows %q and %q, want the holder cli-holder then the waiter cli-waiter, 7 columns each", lines[1], lines[2])
			}
			textToken := ""
			if len(h) == 7 {
				textToken = h[1]
				if _, err := time.ParseDuration(h[5]); err != nil && h[5] != "-" {
					t.Errorf("holder's AGE %q is neither a duration nor -", h[5])
				}
				if _, err := time.ParseDuration(h[6]); err != nil && h[6] != "-" {
					t.Errorf("holder's TTL %q is neither a duration nor -", h[6])
				}
			}
			t.Logf("inspect:\n%s", out)

			code, out, stderr = runCLI(t, b.direct(), "inspect", "-o", "json", name)
			if code != 0 {
				t.Fatalf("inspect -o json: exit %d; stderr:\n%s", code, stderr)
			}
			var st cliStatus
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatalf("inspect -o json: %v:\n%s", err, out)
			}
			if st.Name != name || len(st.Holders) != 1 || len(st.Waiters) != 1 ||
				st.Holders[0].Identity != "cli-holder" || st.Waiters[0].Identity != "cli-waiter" {
				t.Fatalf("inspect -o json: %s\nwant name %q, the holder cli-holder and the waiter cli-waiter", out, name)
			}
			tok := strconv.FormatInt(st.Holders[0].Token, 10)
			if st.Holders[0].Token <= 0 || tok != textToken {
				t.Errorf("holder's token: JSON %s, text %q; want the same positive number", tok, textToken)
			}
			if st.Holders[0].TTLms == nil {
				t.Errorf("inspect -o json: holder without ttl_ms: %s", out)
			}

			if code, _, stderr := runCLI(t, b.direct(), "unlock", name, tok); code != exitUsage {
				t.Errorf("unlock without --force: exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			if code, _, stderr := runCLI(t, b.direct(), "unlock", "--force", name, "no-such-identity"); code != exitNoHolder {
				t.Errorf("unlock --force of an unknown holder: exit %d, want %d; stderr:\n%s", code, exitNoHolder, stderr)
			}
			if _, err := os.Stat(ran); err == nil || !holder.running() {
				t.Fatal("the failed unlocks released the holder")
			}

			code, _, stderr = runCLI(t, b.direct(), "unlock", "--force", name, tok)
			if code != 0 {
				t.Fatalf("unlock --force %s %s: exit %d; stderr:\n%s", name, tok, code, stderr)
			}
			if want := "distsync: force-released token " + tok + " (identity cli-holder) of " + name; !strings.Contains(stderr, want) {
				t.Errorf("unlock --force logged %q, want %q", stderr, want)
			}
			if code := holder.wait(4 * b.ttl); code != exitLost {
				t.Errorf("the holder after unlock --force: exit %d, want %d; stderr:\n%s", code, exitLost, holder.stderr())
			}
			if alive(pgid) {
				t.Errorf("the holder's child %d still alive after its distsync exited", pgid)
			}
			if code := waiter.wait(4 * b.ttl); code != 0 {
				t.Errorf("the waiter: exit %d, want 0; stderr:\n%s", code, waiter.stderr())
			}
			if _, err := os.Stat(ran); err != nil {
				t.Errorf("the waiter's child did not run: %v", err)
			}
			code, out, _ = runCLI(t, b.direct(), "inspect", name)
			if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 1 {
				t.Errorf("inspect of the free name: exit %d, output:\n%s\nwant the header alone", code, out)
			}
		})
	}
}
