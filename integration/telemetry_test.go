package integration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// metrics reads the instruments of Sessions built with its provider.
type metrics struct {
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newMetrics(t *testing.T) *metrics {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return &metrics{reader: r, mp: mp}
}

func (m *metrics) collect(t *testing.T) []metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := m.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var out []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		out = append(out, sm.Metrics...)
	}
	return out
}

// matches reports whether set has every attribute of want.
func matches(set attribute.Set, want map[string]string) bool {
	for k, v := range want {
		got, ok := set.Value(attribute.Key(k))
		if !ok || got.Emit() != v {
			return false
		}
	}
	return true
}

// sum adds up the points of the int64 counter or up-down counter name whose
// attributes match want.
func (m *metrics) sum(t *testing.T, name string, want map[string]string) int64 {
	t.Helper()
	var n int64
	for _, mt := range m.collect(t) {
		if mt.Name != name {
			continue
		}
		s, ok := mt.Data.(metricdata.Sum[int64])
		if !ok {
			t.Fatalf("%s is a %T, want an int64 sum", name, mt.Data)
		}
		for _, p := range s.DataPoints {
			if matches(p.Attributes, want) {
				n += p.Value
			}
		}
	}
	return n
}

// count adds up the counts of the points of histogram name whose
// attributes match want.
func (m *metrics) count(t *testing.T, name string, want map[string]string) uint64 {
	t.Helper()
	var n uint64
	for _, mt := range m.collect(t) {
		if mt.Name != name {
			continue
		}
		h, ok := mt.Data.(metricdata.Histogram[float64])
		if !ok {
			t.Fatalf("%s is a %T, want a float64 histogram", name, mt.Data)
		}
		for _, p := range h.DataPoints {
			if matches(p.Attributes, want) {
				n += p.Count
			}
		}
	}
	return n
}

// eventually fails t unless cond holds within 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// logRecords is an slog.Handler that keeps every record.
type logRecords struct {
	mu      sync.Mutex
	records []slog.Record
	attrs   []slog.Attr
	shared  *logRecords // the handler that keeps the records (With shares it)
}

func newLogRecords() *logRecords {
	h := &logRecords{}
	h.shared = h
	return h
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.shared.mu.Lock()
	h.shared.records = append(h.shared.records, r)
	h.shared.mu.Unlock()
	return nil
}
func (h *logRecords) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecords{attrs: append(slices.Clone(h.attrs), as...), shared: h.shared}
}
func (h *logRecords) WithGroup(string) slog.Handler { return h }

// find returns the attributes of the records at level with message msg
// whose attribute key has value (any value when value is "").
func (h *logRecords) find(level slog.Level, msg, key, value string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range h.records {
		if r.Level != level || r.Message != msg {
			continue
		}
		m := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value.String()
			return true
		})
		if value == "" || m[key] == value {
			out = append(out, m)
		}
	}
	return out
}

// TestTelemetry runs scripted scenarios on every backend and asserts the
// instruments (read with an SDK ManualReader) and the log records (read
// with a capturing slog handler): acquire, contend, cancel, try, lose,
// force-release and lead.
func TestTelemetry(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { testTelemetry(t, b) })
	}
}

func testTelemetry(t *testing.T, b backend) {
	m := newMetrics(t)
	logs := newLogRecords()
	s := b.openWith(t, sessionOpts{identity: "observed-1", logger: slog.New(logs), meter: m.mp})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	name := t.Name()
	mu, err := s.Mutex(name)
	if err != nil {
		t.Fatal(err)
	}
	of := func(kv ...string) map[string]string {
		w := map[string]string{"distsync.backend": b.name, "distsync.primitive": "mutex", "distsync.name": name}
		for i := 0; i+1 < len(kv); i += 2 {
			w[kv[i]] = kv[i+1]
		}
		return w
	}

	// Acquire.
	l1, err := mu.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := m.count(t, "distsync.acquire.duration", of("distsync.outcome", "acquired")); n != 1 {
		t.Fatalf("acquire.duration{acquired} count %d after one Lock, want 1", n)
	}
	if n := m.sum(t, "distsync.holding", of()); n != 1 {
		t.Fatalf("holding %d, want 1", n)
	}
	rec := logs.find(slog.LevelDebug, "acquired", "token", fmt.Sprint(l1.Token()))
	if len(rec) != 1 || rec[0]["name"] != name || rec[0]["identity"] != "observed-1" || rec[0]["backend"] != b.name || rec[0]["primitive"] != "mutex" {
		t.Fatalf("Debug records of the acquisition %v: want one naming the name, backend, primitive, token and identity", rec)
	}

	// Try while held.
	if _, err := mu.TryLock(ctx); !errors.Is(err, distsync.ErrWouldBlock) {
		t.Fatalf("TryLock while held: %v", err)
	}
	if n := m.count(t, "distsync.acquire.duration", of("distsync.outcome", "would_block")); n != 1 {
		t.Fatalf("acquire.duration{would_block} count %d, want 1", n)
	}

	// Cancel a waiter.
	cctx, ccancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = mu.Lock(cctx)
	ccancel()
	if !errors.Is(err, distsync.ErrNotAcquired) {
		t.Fatalf("Lock with a short context while held: %v", err)
	}
	if n := m.count(t, "distsync.acquire.duration", of("distsync.outcome", "cancelled")); n != 1 {
		t.Fatalf("acquire.duration{cancelled} count %d, want 1", n)
	}

	// Contend: a waiter counts as waiting until the handoff.
	got := make(chan distsync.Lease, 1)
	go func() {
		l, err := mu.Lock(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	eventually(t, "waiting reaches 1", func() bool { return m.sum(t, "distsync.waiting", of()) == 1 })
	if err := l1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l2 := <-got
	if l2 == nil {
		t.FailNow()
	}
	if n := m.sum(t, "distsync.waiting", of()); n != 0 {
		t.Fatalf("waiting %d after the handoff, want 0", n)
	}
	if n := m.count(t, "distsync.hold.duration", of("distsync.end", "released")); n != 1 {
		t.Fatalf("hold.duration{released} count %d, want 1", n)
	}

	// Lose: the backend session underneath ends.
	distsynctest.Expire(t, s)
	select {
	case <-l2.Done():
	case <-ctx.Done():
		t.Fatal("lease not lost after its session expired")
	}
	reason := string(distsync.LostReason(l2.Err()))
	if reason == "" || reason == string(distsync.LossOther) || reason == string(distsync.LossForceReleased) {
		t.Fatalf("LostReason of a lease whose session expired: %q (%v)", reason, l2.Err())
	}
	eventually(t, "lease.lost counted", func() bool {
		return m.sum(t, "distsync.lease.lost", of("distsync.lost.reason", reason)) == 1
	})
	if n := m.sum(t, "distsync.holding", of()); n != 0 {
		t.Fatalf("holding %d after the loss, want 0", n)
	}
	if rec := logs.find(slog.LevelWarn, "lease lost", "reason", reason); len(rec) != 1 || rec[0]["token"] != fmt.Sprint(l2.Token()) {
		t.Fatalf("Warn records of the loss: %v, want one with its token and reason", rec)
	}

	// Force-release, by an operator's Session: the holder's loss is
	// counted with its reason.
	l3, err := mu.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	op := b.openWith(t, sessionOpts{identity: "operator"})
	if err := op.ForceRelease(ctx, name, l3.Token()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l3.Done():
	case <-ctx.Done():
		t.Fatal("lease not ended after ForceRelease")
	}
	eventually(t, "force release counted", func() bool {
		return m.sum(t, "distsync.lease.lost", of("distsync.lost.reason", string(distsync.LossForceReleased))) == 1
	})

	// Lead: the leader gauge is 1 while leading, and both transitions
	// count.
	e, err := s.Election(name + "-e")
	if err != nil {
		t.Fatal(err)
	}
	ofE := func(kv ...string) map[string]string {
		w := map[string]string{"distsync.backend": b.name, "distsync.primitive": "election", "distsync.name": name + "-e"}
		for i := 0; i+1 < len(kv); i += 2 {
			w[kv[i]] = kv[i+1]
		}
		return w
	}
	lead, err := e.Campaign(ctx, []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if n := m.sum(t, "distsync.election.leader", ofE()); n != 1 {
		t.Fatalf("election.leader %d while leading, want 1", n)
	}
	if err := lead.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n := m.sum(t, "distsync.election.leader", ofE()); n != 0 {
		t.Fatalf("election.leader %d after resigning, want 0", n)
	}
	if a, z := m.sum(t, "distsync.election.transitions", ofE("distsync.election.transition", "started")),
		m.sum(t, "distsync.election.transitions", ofE("distsync.election.transition", "stopped")); a != 1 || z != 1 {
		t.Fatalf("election.transitions started %d, stopped %d; want 1 and 1", a, z)
	}

	// Renewals: etcd renews its session lease, Redis each lease, every
	// third of the TTL; ZooKeeper renews inside its client.
	if b.name != "zookeeper" {
		l4, err := mu.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "a renewal recorded", func() bool {
			return m.count(t, "distsync.renewal.duration", map[string]string{"distsync.backend": b.name, "distsync.outcome": "ok"}) > 0
		})
		_ = l4.Release(ctx)
	}
}
