package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/distsync/distsync/internal/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

// TestRun runs the example and checks its story: work only by the latest
// leader, terms growing, the revoked leader told of the loss, the
// shut-down one of the cancellation (and resigning only after its work
// stopped), and a handover to a different replica each time.
func TestRun(t *testing.T) {
	var buf bytes.Buffer
	if err := run(&buf); err != nil {
		t.Fatalf("run: %v\n%s", err, buf.String())
	}
	t.Logf("output:\n%s", buf.String())

	const (
		idle = iota
		working
		stopped // work stopped, leadership not yet released
		told    // leadership lost and OnStoppedLeading called, work still stopping
	)
	var (
		state    = map[int]int{}
		leader   int // the latest replica that led
		shutdown int // the replica the operator is shutting down
		lastTerm uint64
		leads    []int
		stops    []string
	)
	for i, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		fail := func(format string, args ...any) {
			t.Fatalf("line %d %q: %s\n%s", i+1, line, fmt.Sprintf(format, args...), buf.String())
		}
		var id, tick int
		var term uint64
		switch {
		case scan(line, "operator: shutting replica %d down", &id):
			shutdown = id
		case strings.HasPrefix(line, "operator:"):
		case scan(line, "replica %d leads (term %d)", &id, &term):
			if state[id] != idle {
				fail("replica %d leads again before it stopped leading", id)
			}
			if shutdown != 0 && state[shutdown] == working {
				fail("replica %d leads while the work of replica %d, shutting down, still runs", id, shutdown)
			}
			if term <= lastTerm {
				fail("term %d not above the previous %d", term, lastTerm)
			}
			state[id], leader, lastTerm = working, id, term
			leads = append(leads, id)
		case scan(line, "replica %d works: tick %d", &id, &tick):
			if id != leader || state[id] != working {
				fail("replica %d works while replica %d leads", id, leader)
			}
		case strings.Contains(line, "stops working:"):
			if _, err := fmt.Sscanf(line, "replica %d", &id); err != nil || state[id] != working && state[id] != told {
				fail("stop of a replica that was not working")
			}
			if state[id] == told {
				state[id] = idle
			} else {
				state[id] = stopped
			}
			stops = append(stops, line[strings.Index(line, ": ")+2:])
		case scan(line, "replica %d no longer leads", &id):
			// After a loss the Elector says so at once, maybe before the
			// work stopped; after a shutdown only once it stopped.
			switch {
			case state[id] == stopped:
				state[id] = idle
			case state[id] == working && id != shutdown:
				state[id] = told
			default:
				fail("replica %d stopped leading before its work stopped", id)
			}
		default:
			fail("unexpected line")
		}
	}
	if len(leads) != 3 || leads[0] == leads[1] || leads[1] == leads[2] {
		t.Fatalf("leaders in turn %v, want three handovers between different replicas", leads)
	}
	if len(stops) != 3 || !strings.HasPrefix(stops[0], "distsync: lease lost") ||
		stops[1] != "context canceled" || stops[2] != "context canceled" {
		t.Fatalf("work stopped because of %q, want the loss, then two shutdowns", stops)
	}
	for id, st := range state {
		if st != idle {
			t.Fatalf("replica %d still leads at the end", id)
		}
	}
}

// scan reports whether line matches format exactly.
func scan(line, format string, args ...any) bool {
	n, err := fmt.Sscanf(line, format, args...)
	return err == nil && n == len(args) && fmt.Sprintf(format, deref(args)...) == line
}

func deref(args []any) []any {
	var out []any
	for _, a := range args {
		switch p := a.(type) {
		case *int:
			out = append(out, *p)
		case *uint64:
			out = append(out, *p)
		}
	}
	return out
}
