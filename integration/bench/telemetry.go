package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/fallback/zksync"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

var s8 = &scenario{
	id:    "S8",
	title: "Telemetry overhead: uncontended lock + release",
	about: "Three Sessions in one run, on three names: one with the defaults (the global MeterProvider, a no-op, " +
		"and no logger), one with a real OpenTelemetry SDK MeterProvider (a ManualReader: every measurement " +
		"aggregated) and an slog JSON logger at Info writing to io.Discard, and a second default one as the " +
		"control. Their Lock+Release cycles rotate, so all see the same load on a shared machine. In blocks of 25 " +
		"cycles each, the overhead is the observed time over the mean of the two default ones, less one, and the " +
		"control is the second default over the first, less one: the noise floor of the figure. Both are the " +
		"median over the blocks (a burst of load from elsewhere moves one block). Lower is better.",
	headline: metric{"ovh", "telemetry overhead %", "%+.1f", -1},
	noRef:    true,
	metrics: []metric{
		{"us", "µs default (mean of both)", "%.0f", -1},
		{"us_obs", "µs with telemetry", "%.0f", -1},
		{"ctl", "control % (default vs default)", "%+.1f", 0},
	},
	jobs: func(p benchParams) []job {
		cycles := 3 * p.uncontendedCycles
		return []job{
			{backend: "etcd", timeout: 2 * time.Minute, entries: []entry{{name: "distsync", ours: true,
				run: func(r *run) result {
					mp, log := observedTelemetry(r)
					return overhead(r, cycles, openEtcdDistsync, func(r *run, name string, n int) ([]locker, error) {
						return openEtcdDistsyncWith(r, name, n, etcdsync.WithMeterProvider(mp), etcdsync.WithLogger(log))
					})
				}}}},
			{backend: "Redis", timeout: 2 * time.Minute, entries: []entry{{name: "distsync", ours: true,
				run: func(r *run) result {
					mp, log := observedTelemetry(r)
					return overhead(r, cycles, openRedisDistsync, func(r *run, name string, n int) ([]locker, error) {
						return openRedisDistsyncWith(r, name, n, redissync.WithMeterProvider(mp), redissync.WithLogger(log))
					})
				}}}},
			{backend: "ZooKeeper", timeout: 2 * time.Minute, entries: []entry{{name: "distsync", ours: true,
				run: func(r *run) result {
					mp, log := observedTelemetry(r)
					return overhead(r, cycles, openZKDistsync, func(r *run, name string, n int) ([]locker, error) {
						return openZKDistsyncWith(r, name, n, zksync.WithMeterProvider(mp), zksync.WithLogger(log))
					})
				}}}},
		}
	},
}

type opener func(r *run, name string, n int) ([]locker, error)

// overhead rotates Lock+Release cycles of a default Session, an observed
// one and a second default one (the control: how far two identical
// Sessions differ on this machine), each going first in turn. The cycles
// are grouped in blocks; per block the observed time is compared with the
// mean of the two default ones (the control with the first default), and
// the figures are the medians over the blocks, so that a burst of load
// from elsewhere on the machine moves one block, not the result.
func overhead(r *run, cycles int, plain, observed opener) result {
	var ls [3]locker
	for i, open := range []opener{plain, observed, plain} {
		l, err := open(r, nextName("telemetry"), 1)
		if err != nil {
			return failed(err)
		}
		ls[i] = l[0]
	}
	cycle := func(l locker) (time.Duration, error) {
		t0 := time.Now()
		unlock, err := l(r.ctx)
		if err != nil {
			return 0, fmt.Errorf("lock: %w", err)
		}
		if err := unlock(r.ctx); err != nil {
			return 0, fmt.Errorf("unlock: %w", err)
		}
		return time.Since(t0), nil
	}
	const (
		warmUp = 20 // the first cycles open streams, nodes, scripts
		block  = 25 // cycles per Session in a block
	)
	var (
		total, part [3]time.Duration
		ovh, ctl    []float64
	)
	for i := range cycles + warmUp {
		for k := range 3 {
			j := (i + k) % 3
			d, err := cycle(ls[j])
			if err != nil {
				return failed(err)
			}
			if i >= warmUp {
				total[j] += d
				part[j] += d
			}
		}
		if i >= warmUp && (i-warmUp+1)%block == 0 {
			ovh = append(ovh, 2*float64(part[1])/float64(part[0]+part[2])-1)
			ctl = append(ctl, float64(part[2])/float64(part[0])-1)
			part = [3]time.Duration{}
		}
	}
	if len(ovh) == 0 {
		return failedf("%d cycles make no block of %d", cycles, block)
	}
	return result{values: map[string]float64{
		"ovh":    median(ovh) * 100,
		"ctl":    median(ctl) * 100,
		"us":     float64((total[0] + total[2]).Microseconds()) / float64(2*cycles),
		"us_obs": float64(total[1].Microseconds()) / float64(cycles),
	}}
}

// observedTelemetry returns a real SDK MeterProvider, shut down with the
// run, and an Info-level logger that writes JSON to io.Discard.
func observedTelemetry(r *run) (*sdkmetric.MeterProvider, *slog.Logger) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	r.onClose(func() { _ = mp.Shutdown(context.Background()) })
	return mp, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
