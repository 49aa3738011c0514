package telemetry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/leaseend"
)

// The records of one acquisition's life: Debug "acquired" and "released"
// with the name, backend, primitive, token and identity; Warn "lease lost"
// with the reason; Warn for a permanent failure; Debug for a would-block.
func TestLogRecords(t *testing.T) {
	var buf bytes.Buffer
	r := New(Config{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Backend: "etcd", Identity: "host:1"})
	tg := r.Target(Mutex, "", "jobs/a")
	ctx := context.Background()

	var l1 leaseend.Lifecycle
	tg.Begin(ctx, true).End(ctx, &l1, 7, nil)
	l1.Set(distsync.ErrReleased)
	var l2 leaseend.Lifecycle
	tg.Begin(ctx, true).End(ctx, &l2, 8, nil)
	l2.Lose(distsync.Lost(distsync.LossForceReleased, nil, "released by an operator"))
	tg.Begin(ctx, false).End(ctx, nil, 0, distsync.Errorf(distsync.ErrWouldBlock, nil, "held"))
	tg.Begin(ctx, true).End(ctx, nil, 0, distsync.Errorf(distsync.ErrDenied, errors.New("permission denied"), "enqueue"))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		`level=DEBUG msg=acquired backend=etcd name=jobs/a primitive=mutex token=7 identity=host:1`,
		`level=DEBUG msg=released backend=etcd name=jobs/a primitive=mutex token=7 identity=host:1`,
		`level=DEBUG msg=acquired backend=etcd name=jobs/a primitive=mutex token=8 identity=host:1`,
		`level=WARN msg="lease lost" backend=etcd name=jobs/a primitive=mutex token=8 identity=host:1 reason=force_released`,
		`level=DEBUG msg="acquire failed" backend=etcd name=jobs/a primitive=mutex identity=host:1`,
		`level=WARN msg="acquire failed" backend=etcd name=jobs/a primitive=mutex identity=host:1`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("record %d:\n got %s\nwant it to contain %s", i, lines[i], w)
		}
	}
}

// A Recorder without a logger logs nothing and costs no log records: the
// Enabled check comes first.
func TestSilentByDefault(t *testing.T) {
	r := Nop("redis")
	if r.Enabled(context.Background(), slog.LevelError) {
		t.Fatal("a Recorder without a logger is enabled")
	}
	var l leaseend.Lifecycle
	r.Target(Semaphore, "", "s").Begin(context.Background(), true).End(context.Background(), &l, 1, nil)
	l.Lose(distsync.Lost(distsync.LossRenewal, nil, "late"))
}

// BenchmarkAcquire measures what telemetry adds to one acquisition and its
// release: the default (global no-op MeterProvider, no logger), a logger
// at Info (Debug records off) and at Debug (every record formatted).
func BenchmarkAcquire(b *testing.B) {
	ctx := context.Background()
	b.Run("none", func(b *testing.B) { // the lease alone, without telemetry
		b.ReportAllocs()
		for b.Loop() {
			var l leaseend.Lifecycle
			l.OnEnd(func(error) {})
			l.Set(distsync.ErrReleased)
		}
	})
	for _, c := range []struct {
		name string
		log  *slog.Logger
	}{
		{"default", nil},
		{"info-log", slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))},
		{"debug-log", slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))},
	} {
		b.Run(c.name, func(b *testing.B) {
			tg := New(Config{Logger: c.log, Backend: "etcd", Identity: "host:1"}).Target(Mutex, "", "bench")
			b.ReportAllocs()
			for b.Loop() {
				var l leaseend.Lifecycle
				tg.Begin(ctx, true).End(ctx, &l, 1, nil)
				l.Set(distsync.ErrReleased)
			}
		})
	}
}

// Without the name attribute, every Target of a primitive kind and mode
// shares one set of attribute sets; with it, each name has its own.
func TestTargetsShareSets(t *testing.T) {
	r := New(Config{Backend: "etcd"})
	a, b := r.Target(Mutex, "", "a"), r.Target(Mutex, "", "b")
	if a.sets != b.sets {
		t.Error("two mutexes without the name attribute made two sets")
	}
	if w := r.Target(RWMutex, distsync.ModeWrite, "a"); w.sets == a.sets || w.sets == r.Target(RWMutex, distsync.ModeRead, "a").sets {
		t.Error("another kind or mode shares the mutex's sets")
	}
	n := New(Config{Backend: "etcd", Names: true})
	if x, y := n.Target(Mutex, "", "a"), n.Target(Mutex, "", "b"); x.sets == y.sets || x.sets != n.Target(Mutex, "", "a").sets {
		t.Error("with the name attribute, sets are not per name")
	}
}
