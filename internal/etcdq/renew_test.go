package etcdq

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// parkedHere returns the stacks of goroutines in this package's code, but
// for the test's own.
func parkedHere() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, st := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(st, "internal/etcdq.") && !strings.Contains(st, "internal/etcdq.Test") {
			found = append(found, st)
		}
	}
	return found
}

// TestRenewalsNeedNoGoroutine: a renewing Session keeps its lease alive
// for several TTLs with no goroutine of its own between renewals (each
// renewal runs in its timer's goroutine), and Close leaves none.
func TestRenewalsNeedNoGoroutine(t *testing.T) {
	ctx := context.Background()
	c := etcd.Client(t)
	s, err := NewSession(ctx, c, time.Second, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id, err := s.CurrentLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Ten renewals (every TTL/3); a goroutine parked between them would
	// show in most samples.
	for end := time.Now().Add(3500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for _, st := range parkedHere() {
			if strings.Contains(st, "(*renewer).fire") {
				continue // a renewal in flight
			}
			if strings.Contains(st, "[select") || strings.Contains(st, "[chan receive") || strings.Contains(st, "[sleep") {
				t.Fatalf("a goroutine of the Session is parked between renewals:\n%s", st)
			}
		}
	}
	resp, err := c.TimeToLive(ctx, id)
	if err != nil || resp.TTL < 0 { // -1: expired (a 1 s lease reads 0 for its last second)
		t.Fatalf("session lease after 3.5 TTLs: TTL %v, %v; want renewed", resp.TTL, err)
	}
	// The Session still trusts it: no new grant.
	if now, err := s.CurrentLease(ctx); err != nil || now != id {
		t.Fatalf("current lease after 3.5 TTLs: %x, %v; want %x", now, err, id)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left := parkedHere(); len(left) > 0 {
		t.Fatalf("goroutines left after Close:\n%s", strings.Join(left, "\n\n"))
	}
}
