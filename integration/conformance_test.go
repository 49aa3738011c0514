package integration

import (
	"testing"

	"github.com/distsync/distsync/distsynctest"
)

// TestConformance runs the whole conformance suite — every primitive, the
// Session itself, Inspect and ForceRelease — on every backend, through the
// kit's distsynctest.TestSession and one adapter each.
func TestConformance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { distsynctest.TestSession(t, b.kit()) })
	}
}
