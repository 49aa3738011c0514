package distsynctest

import (
	"testing"

	"github.com/distsync/distsync"
)

// TestMemory runs the conformance suite on Memory.
func TestMemory(t *testing.T) {
	m := NewMemory()
	open := func(t *testing.T, identity string) *MemorySession {
		s, err := m.NewSession(identity)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	TestSession(t, Backend{
		Open: func(t *testing.T, identity string) distsync.Session { return open(t, identity) },
		Denied: func(t *testing.T) distsync.Session {
			// A Memory of its own, refusing every name.
			var denied Memory
			denied.Deny("")
			s, err := denied.NewSession("")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		OpenCuttable: func(t *testing.T) (distsync.Session, func(), func()) {
			s := open(t, "")
			return s, s.Disconnect, s.Reconnect
		},
	})
}
