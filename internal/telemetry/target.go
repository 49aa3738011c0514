package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/distsync/distsync"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Primitive is the kind of a primitive, the value of the
// distsync.primitive attribute.
type Primitive string

// The primitive kinds.
const (
	Mutex     Primitive = "mutex"
	RWMutex   Primitive = "rwmutex"
	Semaphore Primitive = "semaphore"
	Election  Primitive = "election"
)

// The outcomes of an acquire call, the values of distsync.outcome.
const (
	OutcomeAcquired   = "acquired"
	OutcomeWouldBlock = "would_block"
	OutcomeCancelled  = "cancelled"
	OutcomeFailed     = "failed"
)

// A Target is one primitive of one name (and, for an RWMutex, one mode)
// on a Recorder, with its attribute sets computed once. It is safe for
// concurrent use.
type Target struct {
	r     *Recorder
	kind  Primitive
	mode  distsync.Mode
	name  string
	attrs []slog.Attr // the log attributes of every record

	*sets
}

// sets are the metric attribute sets of a Target. Without the name
// attribute they are the same for every Target of a primitive kind and
// mode, so the Recorder makes them once per kind and mode and its Targets
// share them: a service (or a waiter, in a benchmark) opening many
// primitives does not pay for fifteen sets each.
type sets struct {
	plain                                   metric.MeasurementOption
	acquired, wouldBlock, cancelled, failed metric.MeasurementOption
	released, lost                          metric.MeasurementOption
	lostBy                                  map[distsync.LossReason]metric.MeasurementOption
	started, stopped                        metric.MeasurementOption
}

// setsKey identifies the sets a Target shares; name is "" unless the
// Recorder records names.
type setsKey struct {
	kind Primitive
	mode distsync.Mode
	name string
}

// Target returns the Target of the primitive kind called name; mode is
// ModeRead or ModeWrite for an RWMutex, "" otherwise.
func (r *Recorder) Target(kind Primitive, mode distsync.Mode, name string) *Target {
	t := &Target{r: r, kind: kind, mode: mode, name: name}
	t.attrs = []slog.Attr{slog.String("name", name), slog.String("primitive", string(kind))}
	if mode != "" {
		t.attrs = append(t.attrs, slog.String("mode", string(mode)))
	}
	key := setsKey{kind: kind, mode: mode}
	if r.cfg.Names {
		key.name = name
	}
	r.setsMu.Lock()
	defer r.setsMu.Unlock()
	if t.sets = r.sets[key]; t.sets == nil {
		t.sets = r.newSets(key)
		if r.sets == nil {
			r.sets = map[setsKey]*sets{}
		}
		r.sets[key] = t.sets
	}
	return t
}

// newSets makes the attribute sets of key.
func (r *Recorder) newSets(key setsKey) *sets {
	t := &sets{}
	base := []attribute.KeyValue{KeyBackend.String(r.cfg.Backend), KeyPrimitive.String(string(key.kind))}
	if key.mode != "" {
		base = append(base, KeyMode.String(string(key.mode)))
	}
	if r.cfg.Names {
		base = append(base, KeyName.String(key.name))
	}
	with := func(kv ...attribute.KeyValue) metric.MeasurementOption {
		return metric.WithAttributeSet(attribute.NewSet(append(append([]attribute.KeyValue(nil), base...), kv...)...))
	}
	t.plain = with()
	t.acquired = with(KeyOutcome.String(OutcomeAcquired))
	t.wouldBlock = with(KeyOutcome.String(OutcomeWouldBlock))
	t.cancelled = with(KeyOutcome.String(OutcomeCancelled))
	t.failed = with(KeyOutcome.String(OutcomeFailed))
	t.released = with(KeyEnd.String("released"))
	t.lost = with(KeyEnd.String("lost"))
	t.lostBy = map[distsync.LossReason]metric.MeasurementOption{}
	for _, reason := range []distsync.LossReason{distsync.LossSessionEnded, distsync.LossRenewal,
		distsync.LossDisconnected, distsync.LossDeleted, distsync.LossForceReleased, distsync.LossOther} {
		t.lostBy[reason] = with(KeyReason.String(string(reason)))
	}
	t.started = with(KeyTransition.String("started"))
	t.stopped = with(KeyTransition.String("stopped"))
	return t
}

// An Ender is a lease whose end can be hooked (leaseend.End's OnEnd).
type Ender interface {
	OnEnd(func(error))
}

// An Op is one acquire call in progress.
type Op struct {
	t        *Target
	start    time.Time
	blocking bool
}

// Begin records the start of an acquire call; blocking is false for the
// Try forms. End must follow.
func (t *Target) Begin(ctx context.Context, blocking bool) Op {
	if blocking {
		t.r.waiting.Add(ctx, 1, t.plain)
	}
	return Op{t: t, start: time.Now(), blocking: blocking}
}

// End records the end of the acquire call: its outcome and duration and,
// when it acquired l (err nil), the lease's hold until l ends. token is
// l's fencing token.
func (o Op) End(ctx context.Context, l Ender, token uint64, err error) {
	t, r := o.t, o.t.r
	took := time.Since(o.start)
	if o.blocking {
		r.waiting.Add(ctx, -1, t.plain)
	}
	switch {
	case err == nil:
		r.acquire.Record(ctx, took.Seconds(), t.acquired)
	case errors.Is(err, distsync.ErrWouldBlock):
		r.acquire.Record(ctx, took.Seconds(), t.wouldBlock)
	case errors.Is(err, distsync.ErrNotAcquired):
		r.acquire.Record(ctx, took.Seconds(), t.cancelled)
	default:
		r.acquire.Record(ctx, took.Seconds(), t.failed)
	}
	if err != nil {
		t.failedCall(ctx, took, err)
		return
	}
	if r.Enabled(ctx, slog.LevelDebug) {
		r.log.LogAttrs(ctx, slog.LevelDebug, "acquired", t.with(
			slog.Uint64("token", token), slog.String("identity", r.cfg.Identity), slog.Duration("waited", took))...)
	}
	t.held(l, token)
}

// failedCall logs an acquire call that failed: at Warn when the failure
// is permanent or a loss, at Debug otherwise.
func (t *Target) failedCall(ctx context.Context, took time.Duration, err error) {
	r := t.r
	level := slog.LevelDebug
	if errors.Is(err, distsync.ErrDenied) || errors.Is(err, distsync.ErrInvalidConfig) ||
		errors.Is(err, distsync.ErrLimitMismatch) || errors.Is(err, distsync.ErrLost) {
		level = slog.LevelWarn
	}
	if r.Enabled(ctx, level) {
		r.log.LogAttrs(ctx, level, "acquire failed", t.with(
			slog.String("identity", r.cfg.Identity), slog.Duration("took", took), slog.Any("error", err))...)
	}
}

// held records l as held until it ends.
func (t *Target) held(l Ender, token uint64) {
	r := t.r
	ctx := context.Background()
	r.holding.Add(ctx, 1, t.plain)
	if t.kind == Election {
		r.leader.Add(ctx, 1, t.plain)
		r.transitions.Add(ctx, 1, t.started)
	}
	start := time.Now()
	l.OnEnd(func(err error) {
		r.holding.Add(ctx, -1, t.plain)
		if t.kind == Election {
			r.leader.Add(ctx, -1, t.plain)
			r.transitions.Add(ctx, 1, t.stopped)
		}
		held := time.Since(start)
		reason := distsync.LostReason(err)
		if reason == "" {
			r.hold.Record(ctx, held.Seconds(), t.released)
			if r.Enabled(ctx, slog.LevelDebug) {
				r.log.LogAttrs(ctx, slog.LevelDebug, "released", t.with(
					slog.Uint64("token", token), slog.String("identity", r.cfg.Identity), slog.Duration("held", held))...)
			}
			return
		}
		r.hold.Record(ctx, held.Seconds(), t.lost)
		by, ok := t.lostBy[reason]
		if !ok {
			by = t.lostBy[distsync.LossOther]
		}
		r.lost.Add(ctx, 1, by)
		if r.Enabled(ctx, slog.LevelWarn) {
			r.log.LogAttrs(ctx, slog.LevelWarn, "lease lost", t.with(
				slog.Uint64("token", token), slog.String("identity", r.cfg.Identity),
				slog.String("reason", string(reason)), slog.Duration("held", held), slog.Any("error", err))...)
		}
	})
}

// with returns the target's log attributes followed by more.
func (t *Target) with(more ...slog.Attr) []slog.Attr {
	return append(append(make([]slog.Attr, 0, len(t.attrs)+len(more)), t.attrs...), more...)
}

// Debug logs msg about the target at Debug (a retry, a handoff).
func (t *Target) Debug(ctx context.Context, msg string, attrs ...slog.Attr) {
	if t.r.Enabled(ctx, slog.LevelDebug) {
		t.r.log.LogAttrs(ctx, slog.LevelDebug, msg, t.with(attrs...)...)
	}
}

// Warn logs msg about the target at Warn (a background cleanup retrying).
func (t *Target) Warn(ctx context.Context, msg string, attrs ...slog.Attr) {
	if t.r.Enabled(ctx, slog.LevelWarn) {
		t.r.log.LogAttrs(ctx, slog.LevelWarn, msg, t.with(attrs...)...)
	}
}

// Renewal records one renewal request that took d and failed with err
// (nil: confirmed). A failure is logged at Warn.
func (r *Recorder) Renewal(ctx context.Context, d time.Duration, err error, attrs ...slog.Attr) {
	if err == nil {
		r.renewal.Record(ctx, d.Seconds(), r.renewOK)
		return
	}
	r.renewal.Record(ctx, d.Seconds(), r.renewFailed)
	r.renewalFail.Add(ctx, 1, r.backend)
	if r.Enabled(ctx, slog.LevelWarn) {
		r.log.LogAttrs(ctx, slog.LevelWarn, "renewal failed", append(attrs, slog.Duration("took", d), slog.Any("error", err))...)
	}
}

// RenewalLate logs at Warn that a renewal was confirmed late: after
// late past its due time, leaving left before the backend may expire it.
func (r *Recorder) RenewalLate(ctx context.Context, late, left time.Duration, attrs ...slog.Attr) {
	if r.Enabled(ctx, slog.LevelWarn) {
		r.log.LogAttrs(ctx, slog.LevelWarn, "renewal late", append(attrs, slog.Duration("late", late), slog.Duration("left", left))...)
	}
}
