package main

import "os"

// The README's summary table, from results given here rather than run:
// distsync's median against the best reference's, and the median of the
// per-round ratios (above 1: distsync is better, whichever way the metric
// goes).
func Example_summary() {
	rep := &report{cfg: config{rounds: 2}, index: map[string]*row{}}
	add := func(s *scenario, backend, name string, ours bool, key string, rounds ...float64) {
		for i, v := range rounds {
			rep.add(s, job{backend: backend}, entry{name: name, ours: ours}, i, result{values: map[string]float64{key: v}})
		}
	}
	add(s1, "Redis", "distsync", true, "us", 240, 230)
	add(s1, "Redis", "redislock", false, "us", 120, 125)
	add(s2, "etcd", "distsync", true, "acq", 390, 400)
	add(s2, "etcd", "concurrency.Mutex", false, "acq", 80, 80)
	rep.summary(os.Stdout)
	// Output:
	// | scenario | backend | distsync | best reference | ratio |
	// |---|---|---|---|---|
	// | S1 µs per Lock+Release | Redis | 235 | 122 (redislock) | 0.52× |
	// | S2 acquisitions/s | etcd | 395 | 80 (concurrency.Mutex) | 4.94× |
}
