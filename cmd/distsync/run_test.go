package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
)

// distsyncRun runs the command in this process against the test etcd and
// returns its exit code, stdout and stderr.
func distsyncRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	useEtcd(t)
	return runArgs(args...)
}

// useEtcd points the command at the test etcd, with a 2 s TTL.
func useEtcd(t *testing.T) {
	t.Helper()
	t.Setenv("DISTSYNC_BACKEND", "etcd")
	t.Setenv("DISTSYNC_ENDPOINTS", strings.Join(etcd.Endpoints(), ","))
	t.Setenv("DISTSYNC_TTL", "2s")
}

func runArgs(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// session opens a Session of the test's own on the test etcd.
func session(t *testing.T) distsync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdsync.NewSession(ctx, etcd.Client(t), etcdsync.WithTTL(2*time.Second), etcdsync.WithIdentity("test-holder"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRunLock(t *testing.T) {
	name := t.Name()
	if code, _, stderr := distsyncRun(t, "lock", name, "--", "sh", "-c", "exit 7"); code != 7 {
		t.Fatalf("exit %d, want 7 (stderr %q)", code, stderr)
	}
	if code, _, _ := distsyncRun(t, "lock", "--shell", name, "--", "test", "$DISTSYNC_NAME", "=", name); code != 0 {
		t.Errorf("--shell with $DISTSYNC_NAME: exit %d, want 0", code)
	}

	// Held elsewhere: --try, --conflict-exit-code and --wait give up.
	m, err := session(t).Mutex(name)
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.Lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := distsyncRun(t, "lock", "--try", name, "--", "true"); code != 171 {
		t.Errorf("--try: exit %d, want 171", code)
	}
	if code, _, _ := distsyncRun(t, "lock", "--try", "--conflict-exit-code", "9", name, "--", "true"); code != 9 {
		t.Errorf("--try --conflict-exit-code 9: exit %d, want 9", code)
	}
	start := time.Now()
	code, _, _ := distsyncRun(t, "lock", "--wait", "300ms", name, "--", "true")
	if took := time.Since(start); code != 171 || took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("--wait 300ms: exit %d after %v, want 171 after about 300ms", code, took)
	}
	// Nothing is left behind by the ones that gave up.
	st, err := session(t).Inspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Holders) != 1 || len(st.Waiters) != 0 {
		t.Errorf("after giving up: %d holders, %d waiters; want 1, 0", len(st.Holders), len(st.Waiters))
	}

	// inspect shows the holder; unlock --force releases it.
	code, out, _ := distsyncRun(t, "inspect", "-o", "json", name)
	var sj statusJSON
	if err := json.Unmarshal([]byte(out), &sj); code != 0 || err != nil || len(sj.Holders) != 1 || sj.Holders[0].Token != l.Token() || sj.Holders[0].Identity != "test-holder" {
		t.Errorf("inspect -o json: exit %d, %q (%v); want the holder with token %d", code, out, err, l.Token())
	}
	tok := strconv.FormatUint(l.Token(), 10)
	code, _, stderr := distsyncRun(t, "unlock", "--force", name, tok)
	if want := "force-released token " + tok + " (identity test-holder) of " + name; code != 0 || !strings.Contains(stderr, want) {
		t.Errorf("unlock --force: exit %d, stderr %q; want 0 and %q", code, stderr, want)
	}
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the holder did not learn of the force release")
	}
	if code, _, _ := distsyncRun(t, "unlock", "--force", name, tok); code != 177 {
		t.Errorf("unlock --force of a gone holder: exit %d, want 177", code)
	}
	if code, _, _ := distsyncRun(t, "lock", "--try", name, "--", "true"); code != 0 {
		t.Errorf("--try after the force release: exit %d, want 0", code)
	}
}

func TestRunMinHold(t *testing.T) {
	name := t.Name()
	done := make(chan int, 1)
	useEtcd(t)
	start := time.Now()
	go func() {
		code, _, _ := runArgs("lock", "--min-hold", "700ms", name, "--", "true")
		done <- code
	}()
	s := session(t)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := s.Inspect(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Holders) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no holder after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	m, _ := s.Mutex(name)
	if l, err := m.TryLock(context.Background()); err == nil {
		_ = l.Release(context.Background())
		t.Error("TryLock succeeded during --min-hold")
	}
	if code := <-done; code != 0 || time.Since(start) < 700*time.Millisecond {
		t.Errorf("exit %d after %v, want 0 after at least 700ms", code, time.Since(start))
	}
}

func TestRunErrors(t *testing.T) {
	name := t.Name()
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"lock", "", "--", "true"}, 174}, // invalid name
		{[]string{"lock", "--ttl", "1500ms", name}, 174},
		{[]string{"lock", name, "--", "/nonexistent/command"}, 175},
		{[]string{"leader", name}, 176},
		{[]string{"unlock", "--force", name}, 177},
		{[]string{"nope"}, 174},
		{nil, 174},
		{[]string{"help"}, 0},
		{[]string{"help", "sem"}, 0},
		{[]string{"help", "nope"}, 174},
		{[]string{"sem", "-h"}, 0},
		{[]string{"version"}, 0},
	}
	for _, tt := range tests {
		if code, _, stderr := distsyncRun(t, tt.args...); code != tt.want {
			t.Errorf("distsync %q: exit %d, want %d (stderr %q)", tt.args, code, tt.want, stderr)
		}
	}
}

func TestRunSemaphoreAndElection(t *testing.T) {
	name := t.Name()
	if code, _, _ := distsyncRun(t, "sem", "-n", "2", "--weight", "2", name, "--", "true"); code != 0 {
		t.Errorf("sem: exit %d, want 0", code)
	}
	if code, _, _ := distsyncRun(t, "rlock", name+"/rw", "--", "true"); code != 0 {
		t.Errorf("rlock: exit %d, want 0", code)
	}
	if code, _, _ := distsyncRun(t, "wlock", name+"/rw", "--", "true"); code != 0 {
		t.Errorf("wlock: exit %d, want 0", code)
	}
	// A limit mismatch with a holder is a configuration error.
	sem, err := session(t).Semaphore(context.Background(), name, 3)
	if err != nil {
		t.Fatal(err)
	}
	l, err := sem.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := distsyncRun(t, "sem", "-n", "2", "--try", name, "--", "true"); code != 174 {
		t.Errorf("sem with another limit: exit %d, want 174", code)
	}
	_ = l.Release(context.Background())

	// elect runs the command as leader; leader prints the value.
	e, err := session(t).Election(name)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := e.Campaign(context.Background(), []byte("the-value"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := distsyncRun(t, "leader", name)
	if code != 0 || out != "the-value\n" {
		t.Errorf("leader: exit %d, %q; want 0, %q", code, out, "the-value\n")
	}
	code, out, _ = distsyncRun(t, "leader", "-o", "json", name)
	if want := `{"value":"the-value","term":` + strconv.FormatUint(ld.Token(), 10) + "}\n"; code != 0 || out != want {
		t.Errorf("leader -o json: exit %d, %q; want 0, %q", code, out, want)
	}
	if code, _, _ := distsyncRun(t, "elect", "--try", name, "v", "--", "true"); code != 171 {
		t.Errorf("elect --try with a leader: exit %d, want 171", code)
	}
	_ = ld.Release(context.Background())
	if code, _, _ := distsyncRun(t, "elect", name, "v2", "sh", "-c", "exit 4"); code != 4 {
		t.Errorf("elect: exit %d, want 4", code)
	}
}
