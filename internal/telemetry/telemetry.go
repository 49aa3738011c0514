// Package telemetry is what every backend's Session records about its
// work, written once: the OpenTelemetry instruments (acquire and hold
// durations, waiting and holding counts, losses, renewals, leadership) and
// the slog records (Debug for acquisitions and retries, Warn for late
// renewals, losses, background retries and permanent errors).
//
// A Recorder with neither a logger nor a MeterProvider set records through
// the global MeterProvider (a no-op unless the application set one) and
// logs nothing. Every record on a hot path costs a few atomic loads then:
// the attribute sets are computed once per primitive, and log records are
// built only when their level is enabled.
package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the instrumentation scope of every instrument.
const ScopeName = "github.com/distsync/distsync"

// The attribute keys.
const (
	KeyBackend    = attribute.Key("distsync.backend")
	KeyPrimitive  = attribute.Key("distsync.primitive")
	KeyMode       = attribute.Key("distsync.mode")
	KeyName       = attribute.Key("distsync.name")
	KeyOutcome    = attribute.Key("distsync.outcome")
	KeyEnd        = attribute.Key("distsync.end")
	KeyReason     = attribute.Key("distsync.lost.reason")
	KeyTransition = attribute.Key("distsync.election.transition")
)

// Config is what a Session's options say about telemetry.
type Config struct {
	Logger   *slog.Logger         // nil: silent
	Meter    metric.MeterProvider // nil: otel.GetMeterProvider()
	Names    bool                 // record the name as an attribute
	Backend  string               // "etcd", "redis" or "zookeeper"
	Identity string               // the Session's holder identity
}

// A Recorder records one Session's telemetry. It is safe for concurrent
// use.
type Recorder struct {
	cfg     Config
	log     *slog.Logger // nil when silent
	backend metric.MeasurementOption

	acquire     metric.Float64Histogram
	hold        metric.Float64Histogram
	waiting     metric.Int64UpDownCounter
	holding     metric.Int64UpDownCounter
	lost        metric.Int64Counter
	renewal     metric.Float64Histogram
	renewalFail metric.Int64Counter
	leader      metric.Int64UpDownCounter
	transitions metric.Int64Counter

	renewOK, renewFailed metric.MeasurementOption

	setsMu sync.Mutex
	sets   map[setsKey]*sets // see Target
}

// durationBuckets are the advised histogram boundaries, in seconds: from a
// millisecond (an uncontended lock) to five minutes (a long wait or hold).
var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// New returns the Recorder of cfg. Instruments the MeterProvider fails to
// create record nothing (OpenTelemetry returns no-op ones), and the
// failure is logged at Warn.
func New(cfg Config) *Recorder {
	r := &Recorder{cfg: cfg, log: cfg.Logger}
	if r.log != nil {
		r.log = r.log.With(slog.String("backend", cfg.Backend))
	}
	mp := cfg.Meter
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(ScopeName)
	var errs []error
	seconds := func(name, desc string) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(durationBuckets...))
		errs = append(errs, err)
		return h
	}
	upDown := func(name, unit, desc string) metric.Int64UpDownCounter {
		c, err := m.Int64UpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	r.acquire = seconds("distsync.acquire.duration",
		"Time an acquire call took (Lock, RLock, Acquire, Campaign and their Try forms), by outcome.")
	r.hold = seconds("distsync.hold.duration", "Time a lease was held, from its acquisition to its release or loss.")
	r.waiting = upDown("distsync.waiting", "{acquisition}", "Blocking acquire calls in progress.")
	r.holding = upDown("distsync.holding", "{lease}", "Leases held.")
	r.lost = counter("distsync.lease.lost", "{lease}", "Leases lost (ended without Release), by reason.")
	r.renewal = seconds("distsync.renewal.duration",
		"Time a renewal request took (etcd session lease keep-alive, Redis lease renewal), by outcome.")
	r.renewalFail = counter("distsync.renewal.failures", "{renewal}", "Renewal requests that failed or were refused.")
	r.leader = upDown("distsync.election.leader", "{leadership}", "Elections this process leads: 1 while it leads one.")
	r.transitions = counter("distsync.election.transitions", "{transition}",
		"Times this process started or stopped leading an election.")
	if err := errors.Join(errs...); err != nil {
		r.Warn(context.Background(), "creating metric instruments", slog.Any("error", err))
	}
	b := KeyBackend.String(cfg.Backend)
	r.backend = metric.WithAttributeSet(attribute.NewSet(b))
	r.renewOK = metric.WithAttributeSet(attribute.NewSet(b, KeyOutcome.String("ok")))
	r.renewFailed = metric.WithAttributeSet(attribute.NewSet(b, KeyOutcome.String("failed")))
	return r
}

// Nop returns a Recorder that logs nothing and records through the global
// MeterProvider, for engines built without a Session's options.
func Nop(backend string) *Recorder { return New(Config{Backend: backend}) }

// Logger returns the Session's logger, nil when silent.
func (r *Recorder) Logger() *slog.Logger { return r.log }

// Enabled reports whether records at level are logged.
func (r *Recorder) Enabled(ctx context.Context, level slog.Level) bool {
	return r != nil && r.log != nil && r.log.Enabled(ctx, level)
}

// Debug logs msg at Debug with attrs, when that level is enabled.
func (r *Recorder) Debug(ctx context.Context, msg string, attrs ...slog.Attr) {
	if r.Enabled(ctx, slog.LevelDebug) {
		r.log.LogAttrs(ctx, slog.LevelDebug, msg, attrs...)
	}
}

// Info logs msg at Info with attrs, when that level is enabled.
func (r *Recorder) Info(ctx context.Context, msg string, attrs ...slog.Attr) {
	if r.Enabled(ctx, slog.LevelInfo) {
		r.log.LogAttrs(ctx, slog.LevelInfo, msg, attrs...)
	}
}

// Warn logs msg at Warn with attrs, when that level is enabled.
func (r *Recorder) Warn(ctx context.Context, msg string, attrs ...slog.Attr) {
	if r.Enabled(ctx, slog.LevelWarn) {
		r.log.LogAttrs(ctx, slog.LevelWarn, msg, attrs...)
	}
}
