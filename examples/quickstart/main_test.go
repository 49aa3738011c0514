package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/distsync/distsync/internal/testserver"
)

func TestMain(m *testing.M) {
	// run starts and stops its own etcd; the check is that it leaves no
	// goroutine behind.
	testserver.Main(m)
}

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	const holdLines = workers*turns + 1 // the turns, then the lock that is lost
	if len(lines) != holdLines+3 {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), holdLines+3, out.String())
	}

	holds := regexp.MustCompile(`^worker (\d+) holds the lock, fencing token (\d+)$`)
	perWorker := make(map[string]int)
	var last uint64
	for i, line := range lines[:holdLines] {
		m := holds.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("line %d = %q, want %q", i+1, line, holds)
		}
		token, err := strconv.ParseUint(m[2], 10, 64)
		if err != nil {
			t.Fatalf("line %d: token: %v", i+1, err)
		}
		// Each line is printed while its lock is held, so the lines are in
		// acquisition order and the tokens must grow.
		if token <= last {
			t.Errorf("line %d: token %d not above the previous one, %d", i+1, token, last)
		}
		last = token
		if i < workers*turns {
			perWorker[m[1]]++
		}
	}
	for id := 1; id <= workers; id++ {
		if got := perWorker[strconv.Itoa(id)]; got != turns {
			t.Errorf("worker %d held the lock %d times, want %d", id, got, turns)
		}
	}

	if want := "worker 1 lost the lock: Done closed, errors.Is(err, distsync.ErrLost) = true"; lines[holdLines] != want {
		t.Errorf("line %d = %q, want %q", holdLines+1, lines[holdLines], want)
	}
	if want := "  distsync: lease lost: "; !strings.HasPrefix(lines[holdLines+1], want) {
		t.Errorf("line %d = %q, want it to start with %q", holdLines+2, lines[holdLines+1], want)
	}
	again := regexp.MustCompile(`^worker 1 holds the lock again, fencing token (\d+)$`).FindStringSubmatch(lines[holdLines+2])
	if again == nil {
		t.Fatalf("line %d = %q, want the lock taken again on the same Session", holdLines+3, lines[holdLines+2])
	}
	if token, _ := strconv.ParseUint(again[1], 10, 64); token <= last {
		t.Errorf("token after the loss %d not above the lost one, %d", token, last)
	}
}
