package etcdsync

import (
	"reflect"
	"sync"

	"github.com/distsync/distsync/internal/telemetry"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// sharedRecorders holds the telemetry recorders of Sessions given no
// logger, no MeterProvider and no name attribute, one per configuration
// (identity): such Sessions
// record alike, so they share their instruments and attribute sets (the
// sets are made once per recorder and primitive kind, a few KiB) instead
// of making them again for every Session. A process that opens a Session
// per waiter, or per request, then pays for them once.
var sharedRecorders struct {
	mu sync.Mutex
	m  map[recorderKey]*telemetry.Recorder
}

// maxSharedRecorders bounds the cache: a process that makes a Session per
// identity gets a recorder of its own per Session beyond it.
const maxSharedRecorders = 16

// recorderKey is what a shared recorder's configuration depends on: the
// global MeterProvider at the time (otel.SetMeterProvider may change it)
// and the identity that its logs would carry.
type recorderKey struct {
	meter    metric.MeterProvider
	identity string
}

// recorder returns o's telemetry recorder: a new one when o has a logger
// or a MeterProvider of its own or records names (a recorder keeps the
// attribute sets of every name it saw, which must go with the Session),
// else the shared one of its configuration.
func (o options) recorder() *telemetry.Recorder {
	cfg := telemetry.Config{Logger: o.logger, Meter: o.meter, Names: o.names, Backend: "etcd", Identity: o.identity}
	if o.logger != nil || o.meter != nil || o.names {
		return telemetry.New(cfg)
	}
	mp := otel.GetMeterProvider()
	if mp == nil || !reflect.TypeOf(mp).Comparable() {
		return telemetry.New(cfg)
	}
	cfg.Meter = mp
	key := recorderKey{meter: mp, identity: o.identity}
	sharedRecorders.mu.Lock()
	defer sharedRecorders.mu.Unlock()
	if r := sharedRecorders.m[key]; r != nil {
		return r
	}
	r := telemetry.New(cfg)
	if len(sharedRecorders.m) < maxSharedRecorders {
		if sharedRecorders.m == nil {
			sharedRecorders.m = map[recorderKey]*telemetry.Recorder{}
		}
		sharedRecorders.m[key] = r
	}
	return r
}
