package main

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/fallback/zksync"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// observedName is the name of S8's entry with telemetry on.
const observedName = "distsync+telemetry"

var s8 = &scenario{
	id:    "S8",
	title: "Telemetry overhead: uncontended lock + release",
	about: "S1 twice, in the same round: distsync with its defaults (the global MeterProvider, a no-op, and " +
		"no logger) against distsync with a real OpenTelemetry SDK MeterProvider (a ManualReader: every " +
		"measurement aggregated) and an slog JSON logger at Info writing to io.Discard. The ratio is the " +
		"observed µs over the default µs: the cost of telemetry. Lower is better.",
	headline: metric{"us", "µs per Lock+Release", "%.0f", -1},
	metrics: []metric{
		{"reqs", "requests/op", "%.2f", -1},
	},
	jobs: func(p benchParams) []job {
		timed := func(open func(r *run, name string, n int) ([]locker, error)) func(r *run) result {
			return func(r *run) result {
				return uncontended(r, lib{open: open}, p.uncontendedCycles)
			}
		}
		observed := "SDK MeterProvider (ManualReader) and an Info-level slog JSON logger to io.Discard"
		return []job{
			{backend: "etcd", timeout: time.Minute, entries: []entry{
				{name: "distsync", ours: true, run: timed(openEtcdDistsync)},
				{name: observedName, note: observed, run: timed(func(r *run, name string, n int) ([]locker, error) {
					mp, log := observedTelemetry(r)
					return openEtcdDistsyncWith(r, name, n, etcdsync.WithMeterProvider(mp), etcdsync.WithLogger(log))
				})},
			}},
			{backend: "Redis", timeout: time.Minute, entries: []entry{
				{name: "distsync", ours: true, run: timed(openRedisDistsync)},
				{name: observedName, note: observed, run: timed(func(r *run, name string, n int) ([]locker, error) {
					mp, log := observedTelemetry(r)
					return openRedisDistsyncWith(r, name, n, redissync.WithMeterProvider(mp), redissync.WithLogger(log))
				})},
			}},
			{backend: "ZooKeeper", timeout: time.Minute, entries: []entry{
				{name: "distsync", ours: true, run: timed(openZKDistsync)},
				{name: observedName, note: observed, run: timed(func(r *run, name string, n int) ([]locker, error) {
					mp, log := observedTelemetry(r)
					return openZKDistsyncWith(r, name, n, zksync.WithMeterProvider(mp), zksync.WithLogger(log))
				})},
			}},
		}
	},
}

// observedTelemetry returns a real SDK MeterProvider, shut down with the
// run, and an Info-level logger that writes JSON to io.Discard.
func observedTelemetry(r *run) (*sdkmetric.MeterProvider, *slog.Logger) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	r.onClose(func() { _ = mp.Shutdown(context.Background()) })
	return mp, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
