package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distsync/distsync/internal/testserver"
)

// A signal while waiting withdraws the wait, leaving no waiter, and
// exits 128+N.
func TestRunSignalWhileWaiting(t *testing.T) {
	name := t.Name()
	s := session(t)
	m, err := s.Mutex(name)
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.Background())
	useEtcd(t)
	done := make(chan int, 1)
	go func() {
		code, _, _ := runArgs("lock", name, "--", "true")
		done <- code
	}()
	waitWaiters(t, name, 1)
	// run has caught SIGHUP since before it opened its Session, so the
	// signal reaches it and not the test process's default action.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 128+int(syscall.SIGHUP) {
			t.Errorf("exit %d, want %d", code, 128+int(syscall.SIGHUP))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting lock did not end on SIGHUP")
	}
	waitWaiters(t, name, 0)
}

// waitWaiters waits until name has n waiters.
func waitWaiters(t *testing.T, name string, n int) {
	t.Helper()
	s := session(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := s.Inspect(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Waiters) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d waiters after 5s, want %d", name, len(st.Waiters), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The password comes from DISTSYNC_PASSWORD or --password-file, never
// from a flag; a wrong one is a backend error (denied).
func TestRunPassword(t *testing.T) {
	e, err := testserver.StartEtcd()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.EnableAuth(ctx, "cli", "s3cret", "jobs/"); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DISTSYNC_ENDPOINTS", strings.Join(e.Endpoints(), ","))
	t.Setenv("DISTSYNC_TTL", "2s")
	t.Setenv("DISTSYNC_USER", "cli")

	t.Setenv("DISTSYNC_PASSWORD", "s3cret")
	if code, _, stderr := runArgs("lock", "jobs/pw", "--", "true"); code != 0 {
		t.Errorf("DISTSYNC_PASSWORD: exit %d, want 0; stderr %q", code, stderr)
	}
	t.Setenv("DISTSYNC_PASSWORD", "wrong")
	if code, _, _ := runArgs("lock", "jobs/pw", "--", "true"); code != exitBackend {
		t.Errorf("a wrong password: exit %d, want %d", code, exitBackend)
	}
	if code, _, stderr := runArgs("lock", "--password-file", pwFile, "jobs/pw", "--", "true"); code != 0 {
		t.Errorf("--password-file over a wrong DISTSYNC_PASSWORD: exit %d, want 0; stderr %q", code, stderr)
	}
}
