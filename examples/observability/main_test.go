package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/distsync/distsync/internal/testserver"
)

func TestMain(m *testing.M) {
	// run starts and stops its own etcd and HTTP server; the check is that
	// it leaves no goroutine behind.
	testserver.Main(m)
}

// A sample is one line of the Prometheus text exposition.
type sample struct {
	name   string
	labels map[string]string
	value  string
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// TestRunOnce runs the -once script and checks what it printed: the
// Inspect of the queue, the health check, and every family the script
// must have recorded, as the Prometheus exporter wrote them.
func TestRunOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), onceTimeout)
	defer cancel()
	var out, logs bytes.Buffer
	if err := run(ctx, config{addr: "127.0.0.1:0", once: true, stdout: &out, stderr: &logs}); err != nil {
		t.Fatalf("run: %v\noutput:\n%s\nlogs:\n%s", err, out.String(), logs.String())
	}
	report := out.String()
	t.Logf("output:\n%s", report)

	for _, want := range []string{
		"prober: TryLock: distsync: would block",
		"prober: Lock with a 100ms deadline: distsync: not acquired",
		`"identity": "worker-1"`,
		`"identity": "worker-2"`,
		"GET /healthz: 200 ok\n",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("output lacks %q", want)
		}
	}

	types := map[string]string{} // family → TYPE
	var samples []sample
	for line := range strings.Lines(report) {
		line = strings.TrimSuffix(line, "\n")
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			types[name] = typ
			continue
		}
		if !strings.HasPrefix(line, "distsync_") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("malformed sample %q", line)
			continue
		}
		s := sample{name: m[1], labels: map[string]string{}, value: m[3]}
		for _, kv := range labelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[kv[1]] = kv[2]
		}
		samples = append(samples, s)
	}

	for family, typ := range map[string]string{
		"distsync_acquire_duration_seconds": "histogram",
		"distsync_hold_duration_seconds":    "histogram",
		"distsync_renewal_duration_seconds": "histogram",
		"distsync_holding":                  "gauge",
		"distsync_waiting":                  "gauge",
		"distsync_election_leader":          "gauge",
	} {
		if got := types[family]; got != typ {
			t.Errorf("# TYPE %s = %q, want %q", family, got, typ)
		}
	}

	// find returns the value of the first sample called name whose labels
	// include want, and whether there is one.
	find := func(name string, want map[string]string) (string, bool) {
	next:
		for _, s := range samples {
			if s.name != name {
				continue
			}
			for k, v := range want {
				if s.labels[k] != v {
					continue next
				}
			}
			return s.value, true
		}
		return "", false
	}
	jobs := map[string]string{"distsync_backend": "etcd", "distsync_primitive": "mutex", "distsync_name": lockName}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for k, v := range jobs {
			m[k] = v
		}
		return m
	}
	for _, outcome := range []string{"acquired", "would_block", "cancelled"} {
		if v, ok := find("distsync_acquire_duration_seconds_count", with("distsync_outcome", outcome)); !ok || v == "0" {
			t.Errorf("distsync_acquire_duration_seconds_count{outcome=%q} = %q (found %t), want a count", outcome, v, ok)
		}
	}
	if v, ok := find("distsync_hold_duration_seconds_count", with("distsync_end", "released")); !ok || v == "0" {
		t.Errorf("distsync_hold_duration_seconds_count{end=released} = %q (found %t), want a count", v, ok)
	}
	// worker-1 holds the lock and worker-2 waits while /metrics is read.
	for _, name := range []string{"distsync_holding", "distsync_waiting"} {
		if v, ok := find(name, jobs); v != "1" {
			t.Errorf("%s{name=%q} = %q (found %t), want 1", name, lockName, v, ok)
		}
	}
	if v, ok := find("distsync_election_leader", map[string]string{"distsync_name": electionName}); v != "1" {
		t.Errorf("distsync_election_leader{name=%q} = %q (found %t), want 1", electionName, v, ok)
	}
	if v, ok := find("distsync_renewal_duration_seconds_count", map[string]string{"distsync_outcome": "ok"}); !ok || v == "0" {
		t.Errorf("distsync_renewal_duration_seconds_count{outcome=ok} = %q (found %t), want a count", v, ok)
	}
}
