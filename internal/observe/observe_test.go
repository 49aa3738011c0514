package observe

import (
	"testing"
	"time"

	"github.com/distsync/distsync"
)

func TestDedupe(t *testing.T) {
	var d Dedupe
	now := time.Now()
	steps := []struct {
		l    distsync.Leader
		want bool
	}{
		{distsync.Leader{None: true, Time: now}, true},
		{distsync.Leader{None: true, Time: now.Add(time.Second)}, false}, // time is not state
		{distsync.Leader{Term: 5, Value: []byte("a")}, true},
		{distsync.Leader{Term: 5, Value: []byte("a")}, false},
		{distsync.Leader{Term: 5, Value: []byte("b")}, true}, // proclaimed
		{distsync.Leader{Term: 6, Value: []byte("b")}, true}, // new leader, same value
		{distsync.Leader{None: true}, true},
	}
	for i, s := range steps {
		if got := !d.Repeats(s.l); got != s.want {
			t.Fatalf("step %d (%+v): new = %v, want %v", i, s.l, got, s.want)
		}
		if !d.Repeats(s.l) {
			d.Delivered(s.l)
		}
	}
}
