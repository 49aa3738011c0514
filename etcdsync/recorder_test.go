package etcdsync

import (
	"log/slog"
	"testing"
)

// TestSharedRecorder: Sessions configured alike without telemetry options
// share one recorder (and so its attribute sets); a logger, a name
// attribute or another identity gets a recorder of its own.
func TestSharedRecorder(t *testing.T) {
	plain := options{identity: "host:1"}
	if a, b := plain.recorder(), plain.recorder(); a != b {
		t.Error("two Sessions with default telemetry got two recorders, want one shared")
	}
	for what, o := range map[string]options{
		"logger":   {identity: "host:1", logger: slog.New(slog.DiscardHandler)},
		"names":    {identity: "host:1", names: true},
		"identity": {identity: "host:2"},
	} {
		if o.recorder() == plain.recorder() {
			t.Errorf("a Session with another %s shares the default recorder", what)
		}
	}
	if o := (options{identity: "host:3", names: true}); o.recorder() == o.recorder() {
		t.Error("Sessions recording names share a recorder: its per-name sets would outlive them")
	}
}
