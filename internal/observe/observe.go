// Package observe holds what every backend's Election.Observe shares: the
// rule that an observer never delivers the same state twice in a row.
package observe

import (
	"bytes"

	"github.com/distsync/distsync"
)

// Dedupe remembers the last state an observer delivered. Its zero value has
// delivered nothing. It is not safe for concurrent use.
type Dedupe struct {
	sent bool
	last distsync.Leader
}

// Next reports whether l differs from the last state delivered (leader,
// term and value; the time is ignored), and if so remembers it as
// delivered. The first state always differs.
func (d *Dedupe) Next(l distsync.Leader) bool {
	if d.sent && Same(d.last, l) {
		return false
	}
	d.sent, d.last = true, l
	return true
}

// Same reports whether a and b are the same state of an election: both
// without a leader, or the same term with the same value.
func Same(a, b distsync.Leader) bool {
	return a.None == b.None && a.Term == b.Term && bytes.Equal(a.Value, b.Value)
}
