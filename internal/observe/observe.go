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

// Repeats reports whether l is the state delivered last (leader, term and
// value; the time is ignored): an observer skips it. Nothing repeats before
// the first delivery.
func (d *Dedupe) Repeats(l distsync.Leader) bool { return d.sent && Same(d.last, l) }

// Delivered records that l was delivered.
func (d *Dedupe) Delivered(l distsync.Leader) { d.sent, d.last = true, l }

// Same reports whether a and b are the same state of an election: both
// without a leader, or the same term with the same value.
func Same(a, b distsync.Leader) bool {
	return a.None == b.None && a.Term == b.Term && bytes.Equal(a.Value, b.Value)
}
