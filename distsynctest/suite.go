package distsynctest

import (
	"sync"
	"testing"

	"github.com/distsync/distsync"
)

// Backend is what TestSession needs of an implementation of distsync's contract.
type Backend struct {
	// Open returns a new Session, as a separate process would have it (its own connection), whose
	// holder identity is identity ("" for the implementation's default), closed at t's cleanup.
	// Required.
	Open func(t *testing.T, identity string) distsync.Session
	// Expire, DeleteHolder and Entries inject losses and read the backend's state; nil means the
	// kit's functions of the same names.
	Expire       func(t testing.TB, s distsync.Session)
	DeleteHolder func(t testing.TB, l distsync.Lease)
	Entries      func(t testing.TB, s distsync.Session, name string) []string
	// OpenCuttable returns a Session whose connection the test can cut (every call fails or waits,
	// leases end as lost) and heal. Nil skips the tests that need it.
	OpenCuttable func(t *testing.T) (s distsync.Session, cut, heal func())
	// Denied returns a Session that the backend refuses for every name (or nil when opening it
	// already failed with ErrDenied). Nil skips the tests that need it.
	Denied func(t *testing.T) distsync.Session
	// Compact discards the backend's history of changes; nil for a backend that keeps none.
	Compact func(t *testing.T)
	// ObserveCoalesces declares that Election.Observe may skip short-lived states.
	ObserveCoalesces bool
}

// TestSession runs the conformance suite of distsync's contract on b: every primitive, the Session,
// Inspect and ForceRelease, as subtests. It is distsync's own suite; the etcd, Redis and ZooKeeper
// Sessions and Memory run through it.
//
// The subtests are "Mutex", "RWMutex", "Semaphore", "Election", "Session" and "Inspect". They check
// these properties of distsync's design:
//
//   - P1 safety: never two holders of a Mutex, never a writer with anyone else on an RWMutex, never
//     more holders than the limit of a Semaphore, never two leaders. Each check first runs on a
//     control that breaks the property, to show that it can fail.
//   - P2 loss is a value: a lease whose session ends, or whose entry is deleted, ends with ErrLost.
//     The next comer then gets it.
//   - P3 fencing: tokens and terms increase with every acquisition.
//   - P4 cancellation leaves nothing: a cancelled or timed-out acquisition fails with
//     ErrNotAcquired and the context's error, and leaves no entry. Deadlines short enough to cut
//     off the first request are among those tried.
//   - P5 names never collide: names that nest, or escape into each other, stay apart.
//   - P7 order: a Mutex and a Semaphore grant in arrival order. An RWMutex does not starve
//     writers. A waiting weighted acquisition is not overtaken.
//   - P8 same session: two acquisitions through one Session exclude each other.
//   - P9 release is exact: a late Release of a lost lease frees nobody else's.
//   - P10 clear errors: every error wraps exactly one sentinel (see Sentinels). Semaphore limits
//     that disagree fail with ErrLimitMismatch. A denied user gets ErrDenied at once.
//   - P11 long-lived: a Session acquires again after its backend session ended. Close ends its
//     leases, and later calls fail with ErrClosed.
//   - P12 visible: Inspect lists holders and waiters in order, with identities and modes.
//     ForceRelease ends one, and its holder is told.
//
// The Election checks also cover Leader, Proclaim, Observe and Run. Observe must deliver every
// change in order, "no leader" included, also after a reconnect.
//
// Each hook of b has its part. Open gives every simulated process a Session of its own; the
// Inspect checks pass identities. TestSession also opens one Session with Open, once, to pass to
// Entries. Entries must list one entry per holder, waiter and candidate of a name, and none once
// they are gone. Expire and DeleteHolder cause the losses. They get the implementation's own
// Session and Lease values, never the suite's wrappers. OpenCuttable serves the check that an
// observer resumes after a reconnect. Compact serves the same check after the history it missed
// was discarded. Denied serves the ErrDenied checks. ObserveCoalesces relaxes the Observe checks:
// an observer then needs to deliver only some of the states that held, in order, from the first
// to the last.
//
// TestSession fails t at once if b.Open is nil. Every subtest takes its names from its own test
// name, so names never clash.
func TestSession(t *testing.T, b Backend) {
	t.Helper()
	if b.Open == nil {
		t.Fatal("distsynctest: Backend.Open is nil")
	}
	if b.Expire == nil {
		b.Expire = Expire
	}
	if b.DeleteHolder == nil {
		b.DeleteHolder = DeleteHolder
	}
	if b.Entries == nil {
		b.Entries = Entries
	}
	s := &suite{b: b, admin: b.Open(t, "")}
	t.Run("Mutex", func(t *testing.T) { testMutexConformance(t, s.mutexes()) })
	t.Run("RWMutex", func(t *testing.T) { testRWMutexConformance(t, s.rwmutexes()) })
	t.Run("Semaphore", func(t *testing.T) { testSemaphoreConformance(t, s.semaphores()) })
	t.Run("Election", func(t *testing.T) { testElectionConformance(t, s.elections()) })
	t.Run("Session", func(t *testing.T) { testSessionConformance(t, s) })
	t.Run("Inspect", func(t *testing.T) { testInspectConformance(t, s) })
}

// A suite is one run of TestSession: the Backend with its nil loss hooks
// replaced by the kit's, and the Session through which it reads entries.
type suite struct {
	b     Backend
	admin distsync.Session

	// sessionOf remembers the Session each primitive handed to a check was
	// opened from, so that endSession can expire it. Keys are the checked
	// wrappers the checks see; values the implementation's own Sessions.
	sessionOf sync.Map
}

// keys lists the backend's entries of name.
func (s *suite) keys(t *testing.T, name string) []string {
	t.Helper()
	return s.b.Entries(t, s.admin, name)
}

// openChecked opens a Session whose primitives check every error they
// return for exactly one sentinel.
func (s *suite) openChecked(t *testing.T) checkedSession {
	t.Helper()
	return checkedSession{t: t, s: s.b.Open(t, "")}
}

// sessionAs opens a checked Session recording identity id.
func (s *suite) sessionAs(t *testing.T, id string) distsync.Session {
	t.Helper()
	return checkedSession{t: t, s: s.b.Open(t, id)}
}

// expire ends the backend session under c (the implementation's own
// Session, not the wrapper).
func (s *suite) expire(t *testing.T, c checkedSession) {
	t.Helper()
	s.b.Expire(t, c.s)
}

// endSessionOf expires the Session primitive p was opened from.
func (s *suite) endSessionOf(t *testing.T, p any) {
	t.Helper()
	sess, ok := s.sessionOf.Load(p)
	if !ok {
		t.Fatalf("no session recorded for %T", p)
	}
	s.b.Expire(t, sess.(distsync.Session))
}
