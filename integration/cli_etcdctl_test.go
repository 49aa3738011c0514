package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCLIEtcdctlLock: `distsync lock N` and the real `etcdctl lock N`
// exclude each other, both ways, on names with '/'.
func TestCLIEtcdctlLock(t *testing.T) {
	b := cliEtcd()
	for _, base := range etcdctlNames {
		t.Run(strings.ReplaceAll(base, "/", "_"), func(t *testing.T) {
			name := cliName(t) + "/" + base

			// distsync holds: etcdctl waits until distsync releases.
			holder := startCLI(t, b.direct(), "lock", name)
			if _, ok := holder.line(20 * time.Second); !ok {
				t.Fatalf("distsync lock printed no token; stderr:\n%s", holder.stderr())
			}
			p := startEtcdctl(t, "lock", name)
			if key, ok := p.line(500 * time.Millisecond); ok {
				t.Fatalf("etcdctl lock %s got the lock (%q) while distsync holds it", name, key)
			}
			holder.signal(syscall.SIGTERM)
			if code := holder.wait(10 * time.Second); code != 0 {
				t.Errorf("distsync lock after SIGTERM: exit %d, want 0", code)
			}
			if key, ok := p.line(20 * time.Second); !ok || !strings.HasPrefix(key, name+"/") {
				t.Fatalf("etcdctl lock %s after distsync released printed %q, %v", name, key, ok)
			}

			// etcdctl holds: distsync neither tries nor waits its way in.
			if code, _, stderr := runCLI(t, b.direct(), "lock", "--try", name, "--", "true"); code != exitConflict {
				t.Errorf("distsync lock --try while etcdctl holds: exit %d, want %d; stderr:\n%s", code, exitConflict, stderr)
			}
			ran := filepath.Join(t.TempDir(), "ran")
			waiter := startCLI(t, b.direct(), "lock", name, "--", "touch", ran)
			time.Sleep(500 * time.Millisecond) // no event to wait for: nothing must happen
			if _, err := os.Stat(ran); err == nil {
				t.Fatalf("distsync ran its child while etcdctl holds %s", name)
			}
			p.stop(t)
			if code := waiter.wait(20 * time.Second); code != 0 {
				t.Errorf("distsync lock after etcdctl released: exit %d; stderr:\n%s", code, waiter.stderr())
			}
			if _, err := os.Stat(ran); err != nil {
				t.Errorf("distsync's child did not run after etcdctl released: %v", err)
			}
		})
	}
}
