package distsynctest

import (
	"context"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// The adapters below give each primitive's checks what they need of the
// Backend. Every primitive is opened from a checked Session of its own, and
// remembered with that Session's unwrapped value for endSession.

func (s *suite) mutexes() mutexBackend {
	open := func(t *testing.T, c checkedSession, name string) distsync.Mutex {
		t.Helper()
		m, err := c.Mutex(name)
		if err != nil {
			t.Fatal(err)
		}
		s.sessionOf.Store(m, c.s)
		return m
	}
	return mutexBackend{
		newMutex: func(t *testing.T, name string) distsync.Mutex { return open(t, s.openChecked(t), name) },
		sameSession: func(t *testing.T, name string) (distsync.Mutex, distsync.Mutex) {
			c := s.openChecked(t)
			return open(t, c, name), open(t, c, name)
		},
		endSession:  func(t *testing.T, m distsync.Mutex) { s.endSessionOf(t, m) },
		deleteState: func(t *testing.T, l distsync.Lease) { s.b.DeleteHolder(t, unwrapLease(l)) },
		keys:        s.keys,
	}
}

func (s *suite) rwmutexes() rwBackend {
	return rwBackend{
		newRW: func(t *testing.T, name string) distsync.RWMutex {
			c := s.openChecked(t)
			rw, err := c.RWMutex(name)
			if err != nil {
				t.Fatal(err)
			}
			s.sessionOf.Store(rw, c.s)
			return rw
		},
		endSession: func(t *testing.T, rw distsync.RWMutex) { s.endSessionOf(t, rw) },
		keys:       s.keys,
	}
}

func (s *suite) semaphores() semBackend {
	return semBackend{
		newSem: func(t *testing.T, name string, limit int64) (distsync.Semaphore, error) {
			c := s.openChecked(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			sem, err := c.Semaphore(ctx, name, limit)
			if err != nil {
				return nil, err
			}
			s.sessionOf.Store(sem, c.s)
			return sem, nil
		},
		endSession: func(t *testing.T, sem distsync.Semaphore) { s.endSessionOf(t, sem) },
		keys:       s.keys,
	}
}

func (s *suite) elections() electionBackend {
	open := func(t *testing.T, c checkedSession, name string) distsync.Election {
		t.Helper()
		e, err := c.Election(name)
		if err != nil {
			t.Fatal(err)
		}
		s.sessionOf.Store(e, c.s)
		return e
	}
	b := electionBackend{
		newElection:      func(t *testing.T, name string) distsync.Election { return open(t, s.openChecked(t), name) },
		endSession:       func(t *testing.T, e distsync.Election) { s.endSessionOf(t, e) },
		compact:          s.b.Compact,
		keys:             s.keys,
		observeCoalesces: s.b.ObserveCoalesces,
	}
	if s.b.OpenCuttable != nil {
		b.newCuttableElection = func(t *testing.T, name string) (distsync.Election, func(), func()) {
			sess, cut, heal := s.b.OpenCuttable(t)
			return open(t, checkedSession{t: t, s: sess}, name), cut, heal
		}
	}
	return b
}
