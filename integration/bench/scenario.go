package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// A metric is one column of a scenario's table.
type metric struct {
	key    string // in result.values
	title  string // column header
	format string // how a value prints
	better int    // +1 higher is better, -1 lower is better, 0 neither
}

// A scenario is one of S1..S5: what it measures and the jobs that
// measure it.
type scenario struct {
	id, title, about string
	// headline is the metric shown per round, charted, and compared
	// with the best reference of the round.
	headline metric
	// noRef is set when no reference library does what the scenario
	// measures: its table has no ratio columns.
	noRef bool
	// splitCases charts each case in a panel of its own: their values
	// are of different scales.
	splitCases bool
	metrics    []metric // further columns: the median of the rounds
	jobs       func(p benchParams) []job
}

// A job is one case of a scenario on one backend (S5 with 64 waiters on
// Redis, say): the entries are the libraries compared, each run alone,
// unless the job runs them together.
type job struct {
	backend string
	label   string // the case within the scenario, "" if it has one
	timeout time.Duration
	entries []entry
	// together, when set, runs the entries at once instead of one after
	// another: it gets a run per entry (its own clients and request
	// counter) and returns a result per entry, in their order.
	together func(rs []*run, es []entry) []result
}

// An entry is one library's run of a job, on fresh clients.
type entry struct {
	name string
	ours bool
	note string
	run  func(r *run) result
	// cycle, for a job run together, opens the entry's clients on r and
	// returns the operation its part of the job repeats.
	cycle func(r *run) (func() error, error)
}

// A result is one entry's outcome in one round.
type result struct {
	values map[string]float64
	texts  map[string]string // values that are not numbers ("12..14")
	err    error
}

func failed(err error) result { return result{err: err} }

func failedf(format string, args ...any) result { return failed(fmt.Errorf(format, args...)) }

// summary is the log line of a result.
func (res result) summary(s *scenario) string {
	var parts []string
	for _, m := range append([]metric{s.headline}, s.metrics...) {
		if v, ok := res.values[m.key]; ok {
			parts = append(parts, m.title+" "+fmt.Sprintf(m.format, v))
		} else if t, ok := res.texts[m.key]; ok {
			parts = append(parts, m.title+" "+t)
		}
	}
	return strings.Join(parts, ", ")
}

// benchParams are the sizes of a run; -quick shrinks them.
type benchParams struct {
	warmUpCycles      int           // lock cycles per library before round 1
	uncontendedCycles int           // S1: lock cycles timed
	window            time.Duration // S2, S3: how long clients contend
	gracefulSamples   int           // S4: resignations (100 in a full run, so that p99 is not simply the slowest)
	crashLanes        int           // S4: crash sequences run at once
	crashPerLane      int           // S4: crashes in each
	scaleSizes        []int         // S5: waiters queued
	drainTimeout      time.Duration // S5: bound on queuing and draining
}

func params(quick bool) benchParams {
	if quick {
		return benchParams{
			warmUpCycles:      100,
			uncontendedCycles: 100,
			window:            time.Second,
			gracefulSamples:   10,
			crashLanes:        2,
			crashPerLane:      2,
			scaleSizes:        []int{1, 8, 64},
			drainTimeout:      30 * time.Second,
		}
	}
	return benchParams{
		warmUpCycles:      300,
		uncontendedCycles: 1000,
		window:            3 * time.Second,
		gracefulSamples:   100,
		crashLanes:        4,
		crashPerLane:      5,
		scaleSizes:        []int{1, 8, 64, 512},
		drainTimeout:      60 * time.Second,
	}
}

// scenarios are all of them, in report order.
var scenarios = []*scenario{s1, s2, s3, s4, s5, s6, s7, s8, s9}

// selectScenarios returns the scenarios whose ids only lists, or all.
func selectScenarios(only string) ([]*scenario, error) {
	if only == "" {
		return scenarios, nil
	}
	var out []*scenario
	for id := range strings.SplitSeq(only, ",") {
		i := slices.IndexFunc(scenarios, func(s *scenario) bool { return strings.EqualFold(s.id, strings.TrimSpace(id)) })
		if i < 0 {
			return nil, fmt.Errorf("-only: no scenario %q (have S1..S%d)", id, len(scenarios))
		}
		out = append(out, scenarios[i])
	}
	return out, nil
}

// byBackend groups libs by backend, in first-seen order.
func byBackend(ls []lib) (backends []string, groups map[string][]lib) {
	groups = map[string][]lib{}
	for _, l := range ls {
		if _, ok := groups[l.backend]; !ok {
			backends = append(backends, l.backend)
		}
		groups[l.backend] = append(groups[l.backend], l)
	}
	return backends, groups
}

// percentile returns the nearest-rank p-quantile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// mean returns the mean of ds, 0 when empty.
func mean(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}
