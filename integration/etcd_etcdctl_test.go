package integration

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// etcdctlNames are the names the interop tests use: with '/', one of them
// a deeper name of another's style.
var etcdctlNames = []string{"jobs/nightly", "a/b/c"}

var (
	etcdctlOnce sync.Once
	etcdctlBin  string
	etcdctlErr  error
)

// etcdctlPath builds the real etcdctl of this module's go.mod (a tool of
// it, from the module proxy) once per test binary and returns its path.
func etcdctlPath(t *testing.T) string {
	t.Helper()
	etcdctlOnce.Do(func() {
		dir, err := os.MkdirTemp("", "distsync-etcdctl-")
		if err != nil {
			etcdctlErr = err
			return
		}
		etcdctlBin = filepath.Join(dir, "etcdctl")
		out, err := exec.Command("go", "build", "-o", etcdctlBin, "go.etcd.io/etcd/etcdctl/v3").CombinedOutput()
		if err != nil {
			etcdctlErr = errors.New("go build etcdctl: " + err.Error() + ": " + string(out))
		}
	})
	if etcdctlErr != nil {
		t.Fatal(etcdctlErr)
	}
	return etcdctlBin
}

// etcdctlProc is a running etcdctl and the lines it printed.
type etcdctlProc struct {
	cmd   *exec.Cmd
	lines chan string
}

// startEtcdctl runs etcdctl with args against the shared member; it is
// stopped with SIGTERM at cleanup at the latest.
func startEtcdctl(t *testing.T, args ...string) *etcdctlProc {
	t.Helper()
	args = append([]string{"--endpoints=" + strings.Join(etcdServer.Endpoints(), ",")}, args...)
	cmd := exec.Command(etcdctlPath(t), args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &etcdctlProc{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop ends etcdctl with SIGTERM: lock unlocks, elect resigns, then it exits.
func (p *etcdctlProc) stop(t *testing.T) {
	t.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	for range p.lines {
	}
	_ = p.cmd.Wait()
}

// line waits up to d for etcdctl's next output line.
func (p *etcdctlProc) line(d time.Duration) (string, bool) {
	select {
	case l, ok := <-p.lines:
		return l, ok
	case <-time.After(d):
		return "", false
	}
}

// TestEtcdctlLockInterop runs the real `etcdctl lock NAME` against
// distsync Mutexes of the same names, with '/' in them, both ways.
func TestEtcdctlLockInterop(t *testing.T) {
	for _, name := range etcdctlNames {
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			m, err := etcdSession(t, etcdServer.Client(t)).Mutex(name)
			if err != nil {
				t.Fatal(err)
			}

			// etcdctl holds: distsync neither tries nor waits its way in.
			p := startEtcdctl(t, "lock", name)
			key, ok := p.line(20 * time.Second)
			if !ok || !strings.HasPrefix(key, name+"/") {
				t.Fatalf("etcdctl lock %s printed %q, %v; want its key under %q", name, key, ok, name+"/")
			}
			if _, err := m.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
				t.Fatalf("TryLock while etcdctl holds %q: got %v, want ErrWouldBlock", name, err)
			}
			// The parent name is another name: etcdctl's key is deeper
			// than its direct children, and does not block it.
			parent, err := etcdSession(t, etcdServer.Client(t)).Mutex(path.Dir(name))
			if err != nil {
				t.Fatal(err)
			}
			pl, err := parent.TryLock(ctx)
			if err != nil {
				t.Fatalf("TryLock of %q while etcdctl holds %q: %v", path.Dir(name), name, err)
			}
			if err := pl.Release(ctx); err != nil {
				t.Fatal(err)
			}
			got := make(chan distsync.Lease, 1)
			go func() {
				l, err := m.Lock(ctx)
				if err != nil {
					t.Error(err)
				}
				got <- l
			}()
			select {
			case <-got:
				t.Fatalf("distsync Lock of %q returned while etcdctl holds it", name)
			case <-time.After(300 * time.Millisecond):
			}
			p.stop(t)
			l := <-got
			if l == nil {
				t.FailNow()
			}

			// distsync holds: etcdctl waits until the release.
			p = startEtcdctl(t, "lock", name)
			if key, ok := p.line(500 * time.Millisecond); ok {
				t.Fatalf("etcdctl lock %s got the lock (%q) while distsync holds it", name, key)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if key, ok := p.line(20 * time.Second); !ok || !strings.HasPrefix(key, name+"/") {
				t.Fatalf("etcdctl lock %s after the release printed %q, %v", name, key, ok)
			}
			p.stop(t)
		})
	}
}

// TestEtcdctlElectInterop runs the real `etcdctl elect NAME VALUE` against
// distsync Elections of the same names, both ways: each sees the other's
// leader and value.
func TestEtcdctlElectInterop(t *testing.T) {
	for _, name := range etcdctlNames {
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			e, err := etcdSession(t, etcdServer.Client(t)).Election(name)
			if err != nil {
				t.Fatal(err)
			}

			// etcdctl leads: distsync sees its value and waits behind it.
			p := startEtcdctl(t, "elect", name, "theirs")
			if key, ok := p.line(20 * time.Second); !ok || !strings.HasPrefix(key, name+"/") {
				t.Fatalf("etcdctl elect %s printed %q, %v; want its key under %q", name, key, ok, name+"/")
			}
			if v, ok := p.line(5 * time.Second); !ok || v != "theirs" {
				t.Fatalf("etcdctl elect %s printed value %q, %v", name, v, ok)
			}
			if ld, err := e.Leader(ctx); err != nil || string(ld.Value) != "theirs" {
				t.Fatalf("distsync Leader of %q while etcdctl leads: %q, %v; want %q", name, ld.Value, err, "theirs")
			}
			won := make(chan distsync.Leadership, 1)
			go func() {
				l, err := e.Campaign(ctx, []byte("ours"))
				if err != nil {
					t.Error(err)
				}
				won <- l
			}()
			select {
			case <-won:
				t.Fatalf("distsync Campaign of %q won while etcdctl leads", name)
			case <-time.After(300 * time.Millisecond):
			}
			p.stop(t)
			l := <-won
			if l == nil {
				t.FailNow()
			}

			// distsync leads: etcdctl's observer sees it, its candidate waits.
			obs := startEtcdctl(t, "elect", "--listen", name)
			if key, ok := obs.line(20 * time.Second); !ok || !strings.HasPrefix(key, name+"/") {
				t.Fatalf("etcdctl elect --listen %s printed %q, %v", name, key, ok)
			}
			if v, ok := obs.line(5 * time.Second); !ok || v != "ours" {
				t.Fatalf("etcdctl elect --listen %s saw value %q, %v; want %q", name, v, ok, "ours")
			}
			obs.stop(t)
			p = startEtcdctl(t, "elect", name, "theirs")
			if key, ok := p.line(500 * time.Millisecond); ok {
				t.Fatalf("etcdctl elect %s won (%q) while distsync leads", name, key)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if key, ok := p.line(20 * time.Second); !ok || !strings.HasPrefix(key, name+"/") {
				t.Fatalf("etcdctl elect %s after the resignation printed %q, %v", name, key, ok)
			}
			p.stop(t)
		})
	}
}

// TestEtcdConcurrencyInteropSlashNames runs etcd's own concurrency.Mutex
// and concurrency.Election in-process against distsync's, both ways, on
// names with '/'.
func TestEtcdConcurrencyInteropSlashNames(t *testing.T) {
	for _, base := range etcdctlNames {
		t.Run(strings.ReplaceAll(base, "/", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s := etcdSession(t, etcdServer.Client(t))
			cs := concurrencySession(t, etcdServer.Client(t))

			name := base + "-cmutex"
			m, err := s.Mutex(name)
			if err != nil {
				t.Fatal(err)
			}
			theirs := concurrency.NewMutex(cs, name)
			l, err := m.Lock(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := theirs.TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
				t.Fatalf("concurrency.Mutex.TryLock(%q) while distsync holds: got %v, want ErrLocked", name, err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := theirs.TryLock(ctx); err != nil {
				t.Fatalf("concurrency.Mutex.TryLock(%q) after the release: %v", name, err)
			}
			if _, err := m.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
				t.Fatalf("distsync TryLock(%q) while concurrency.Mutex holds: got %v, want ErrWouldBlock", name, err)
			}
			if err := theirs.Unlock(ctx); err != nil {
				t.Fatal(err)
			}

			name = base + "-celect"
			e, err := s.Election(name)
			if err != nil {
				t.Fatal(err)
			}
			ce := concurrency.NewElection(cs, name)
			if err := ce.Campaign(ctx, "theirs"); err != nil {
				t.Fatal(err)
			}
			if ld, err := e.Leader(ctx); err != nil || string(ld.Value) != "theirs" {
				t.Fatalf("distsync Leader(%q) while concurrency.Election leads: %q, %v", name, ld.Value, err)
			}
			won := make(chan distsync.Leadership, 1)
			go func() {
				l, err := e.Campaign(ctx, []byte("ours"))
				if err != nil {
					t.Error(err)
				}
				won <- l
			}()
			select {
			case <-won:
				t.Fatalf("distsync Campaign(%q) won while concurrency.Election leads", name)
			case <-time.After(300 * time.Millisecond):
			}
			if err := ce.Resign(ctx); err != nil {
				t.Fatal(err)
			}
			ld := <-won
			if ld == nil {
				t.FailNow()
			}
			resp, err := concurrency.NewElection(cs, name).Leader(ctx)
			if err != nil || len(resp.Kvs) == 0 || string(resp.Kvs[0].Value) != "ours" {
				t.Fatalf("concurrency.Election.Leader(%q) while distsync leads: %v, %v", name, resp, err)
			}
			if err := ld.Release(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
