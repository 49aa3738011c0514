package main

import (
	"fmt"
	"strings"
)

// A target is one of the goals the benchmark issue set, checked against
// the run: met when the median of the rounds' values meets it (each round
// pairs the libraries in the same conditions; the median keeps one noisy
// round of a shared machine from deciding either way). The report shows
// every round's value next to it.
type target struct {
	what     string
	measured string
	met      bool
	unknown  bool // the run did not measure it (a failed or skipped run)
}

// find returns the row of library name in scenario sid, backend and case.
func (rep *report) find(sid, backend, label, name string) *row {
	for _, r := range rep.rows {
		if r.s.id == sid && r.backend == backend && r.label == label && r.name == name {
			return r
		}
	}
	return nil
}

// perRound formats f's value in every round and checks ok on their
// median; a round without a value (a failed run) fails the target.
//
// With every, the target must be met in every round, not by the median.
func (rep *report) perRound(f func(i int) (float64, bool), format string, ok func(float64) bool, every bool) (measured string, met, unknown bool) {
	var parts []string
	var vs []float64
	missing := false
	for i := range rep.cfg.rounds {
		v, has := f(i)
		if !has {
			parts = append(parts, "–")
			missing = true
			continue
		}
		vs = append(vs, v)
		parts = append(parts, fmt.Sprintf(format, v))
	}
	if len(vs) == 0 {
		return strings.Join(parts, ", "), false, true
	}
	m := median(vs)
	if every {
		all := !missing
		for _, v := range vs {
			all = all && ok(v)
		}
		return fmt.Sprintf("every round: %s (median "+format+")", strings.Join(parts, ", "), m), all, false
	}
	return fmt.Sprintf("median "+format+" (%s)", m, strings.Join(parts, ", ")), ok(m) && !missing, false
}

func (rep *report) targets() []target {
	var ts []target
	addRounds := func(what string, f func(i int) (float64, bool), format string, ok func(float64) bool, every bool) {
		m, met, unknown := rep.perRound(f, format, ok, every)
		ts = append(ts, target{what: what, measured: m, met: met, unknown: unknown})
	}
	add := func(what string, f func(i int) (float64, bool), format string, ok func(float64) bool) {
		addRounds(what, f, format, ok, false)
	}
	ratioTo := func(sid, backend, label, ref string) func(i int) (float64, bool) {
		return func(i int) (float64, bool) {
			ours, theirs := rep.find(sid, backend, label, "distsync"), rep.find(sid, backend, label, ref)
			if ours == nil || theirs == nil {
				return 0, false
			}
			a, ok1 := ours.value(ours.s.headline.key, i)
			b, ok2 := theirs.value(theirs.s.headline.key, i)
			if !ok1 || !ok2 {
				return 0, false
			}
			return better(ours.s.headline, a, b)
		}
	}
	vsBest := func(sid, backend, label string) func(i int) (float64, bool) {
		return func(i int) (float64, bool) {
			ours := rep.find(sid, backend, label, "distsync")
			if ours == nil {
				return 0, false
			}
			return rep.ratio(ours, i)
		}
	}
	ours := func(sid, backend, label, key string) func(i int) (float64, bool) {
		return func(i int) (float64, bool) {
			r := rep.find(sid, backend, label, "distsync")
			if r == nil {
				return 0, false
			}
			return r.value(key, i)
		}
	}
	atLeast := func(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
	atMost := func(x float64) func(float64) bool { return func(v float64) bool { return v <= x } }

	// The goals of the performance issue (issue 18) first.
	for _, b := range []string{"etcd", "Redis", "ZooKeeper"} {
		add(fmt.Sprintf("S1 %s: uncontended Lock+Release ≥ 1.0× the best reference", b), vsBest("S1", b, ""), "%.2f×", atLeast(1))
	}
	add("S2 etcd: acquisitions/s ≥ 7× concurrency.Mutex", ratioTo("S2", "etcd", "", "concurrency.Mutex"), "%.2f×", atLeast(7))
	add("S2 Redis: acquisitions/s ≥ the best of redsync, redislock, rueidislock", vsBest("S2", "Redis", ""), "%.2f×", atLeast(1))
	add("S2 Redis: wait p99 ≤ 10 ms", ours("S2", "Redis", "", "p99"), "%.1f ms", atMost(10))
	add("S2 Redis: per-client skew ≤ 10 %", ours("S2", "Redis", "", "skew"), "%.0f %%", atMost(10))
	add("S2 ZooKeeper: acquisitions/s ≥ 1.0× zk.Lock", ratioTo("S2", "ZooKeeper", "", "zk.Lock"), "%.2f×", atLeast(1))
	sizes := rep.params.scaleSizes
	hi := sizes[len(sizes)-1]
	hiLabel := fmt.Sprintf("%d waiters", hi)
	addRounds(fmt.Sprintf("S5 ZooKeeper: %d waiters drained ≥ 1.0× zk.Lock in every round", hi),
		ratioTo("S5", "ZooKeeper", hiLabel, "zk.Lock"), "%.2f×", atLeast(1), true)
	for _, b := range []string{"etcd", "Redis", "ZooKeeper"} {
		add(fmt.Sprintf("S3 %s: semaphore ≥ 90 %% of ideal", b), ours("S3", b, "", "ofIdeal"), "%.1f %%", atLeast(90))
	}
	add(fmt.Sprintf("S5 etcd: client memory per waiter (%d waiters) ≤ 1.0× concurrency.Mutex", hi),
		func(i int) (float64, bool) {
			a, c := rep.find("S5", "etcd", hiLabel, "distsync"), rep.find("S5", "etcd", hiLabel, "concurrency.Mutex")
			if a == nil || c == nil {
				return 0, false
			}
			x, ok1 := a.value("kib", i)
			y, ok2 := c.value("kib", i)
			return x / y, ok1 && ok2 && y > 0
		}, "%.2f×", atMost(1.0))
	add("S4 etcd graceful failover: p99 ≤ 5 ms", ours("S4", "etcd", "graceful", "p99"), "%.1f ms", atMost(5))
	add("S4 etcd crash failover: p50 no slower than concurrency.Election (within 5 %)",
		func(i int) (float64, bool) {
			a, b := rep.find("S4", "etcd", "crash", "distsync"), rep.find("S4", "etcd", "crash", "concurrency.Election")
			if a == nil || b == nil {
				return 0, false
			}
			x, ok1 := a.value("p50", i)
			y, ok2 := b.value("p50", i)
			if !ok1 || !ok2 {
				return 0, false
			}
			return better(metric{better: -1}, x, y)
		}, "%.2f×", atLeast(0.95))
	for _, b := range []string{"etcd", "Redis", "ZooKeeper"} {
		add(fmt.Sprintf("S8 %s: telemetry (SDK metrics, Info log) costs at most 3 %% of an uncontended Lock+Release", b),
			ours("S8", b, "", "ovh"), "%+.1f %%", atMost(3))
	}
	add("S9 etcd: distsync lock -- true no slower than etcdctl lock (≤ 1.0×)",
		func(i int) (float64, bool) {
			a, c := rep.find("S9", "etcd", "", "distsync"), rep.find("S9", "etcd", "", etcdctlLockName)
			if a == nil || c == nil {
				return 0, false
			}
			x, ok1 := a.value("ms", i)
			y, ok2 := c.value("ms", i)
			return x / y, ok1 && ok2 && y != 0
		}, "%.2f×", atMost(1.0))
	for _, b := range []string{"etcd", "Redis", "ZooKeeper"} {
		lo8, big := ours("S5", b, "8 waiters", "reqs"), ours("S5", b, fmt.Sprintf("%d waiters", hi), "reqs")
		add(fmt.Sprintf("S5 %s: requests per handoff constant from 8 to %d waiters (at most +10 %%)", b, hi),
			func(i int) (float64, bool) {
				x, ok1 := lo8(i)
				y, ok2 := big(i)
				return y / x, ok1 && ok2 && x != 0
			}, "%.2f×", atMost(1.1))
	}
	return ts
}
