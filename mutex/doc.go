// Package mutex is distsync's distributed Mutex on etcd, the reference
// implementation of the distsync contract. Open one from an etcd Session:
//
//	s, err := etcdsync.NewSession(ctx, client, etcdsync.WithTTL(10*time.Second))
//	...
//	mu, err := s.Mutex("jobs/nightly-report")
//	lease, err := mu.Lock(ctx)
//	...
//	defer lease.Release(ctx)
//
// The Mutex is a *Mutex and its leases are *Lease values: assert them to
// reach the etcd key (Lease.Key, Lease.IsOwner).
//
// # Semantics
//
// A Mutex is a name on an etcd Session. Lock enqueues a key under the
// name's prefix, bound to the Session's current lease; the holder is the
// key with the oldest create revision, so the lock is granted in arrival
// order (FIFO). Each waiter watches only its predecessor: a release wakes
// one waiter, which learns in one round trip that it holds the lock. Two
// Lock calls through the same Session exclude each other, unlike etcd's
// concurrency.Mutex.
//
// For names without '/' or '%' the keys are those of etcd's
// concurrency.Mutex ("NAME/<lease>..."), so a distsync Mutex and
// `etcdctl lock NAME` (or concurrency.NewMutex(s, "NAME")) exclude each
// other. Other names are percent-encoded ('/' as %2F, '%' as %25), which
// keeps "a" and "a/b" apart.
//
// # Fencing
//
// A Lease's Token is the create revision of its key, strictly greater for
// every later acquisition. A resource that remembers the highest token it
// accepted and rejects lower ones is safe even against a holder that was
// paused past its TTL. On etcd itself, put Lease.IsOwner in the If of a
// Txn to make a write conditional on still holding the lock.
//
// # Loss
//
// A Lease's Done closes, and Err wraps distsync.ErrLost, when its key is
// deleted (by anyone, or by the revocation or expiry of the session
// lease), when the Session is closed, or when the session lease's renewal
// has not been confirmed for three quarters of its TTL (measured on the
// monotonic clock, so before etcd can expire it). A revoke or a deletion
// is reported as soon as its watch event arrives. A lock taken without
// waiting starts that watch 1 ms after it was taken (most such locks are
// released sooner, and a watch costs the server more than the lock),
// reading the key then: a loss within that first millisecond is reported
// about a millisecond later than one after it.
//
// After a loss of the session lease, the same Mutex locks again. The
// Session grants a new lease on the next call (see etcdsync.Session).
//
// # A session of your own
//
// New opens a Mutex over a *concurrency.Session you manage, for programs
// that already have one. Such a session is never renewed: once it ended,
// Lock fails with distsync.ErrClosed. The first use of such a session asks
// etcd once for its lease's remaining TTL.
//
// # Cancellation and faults
//
// Every call is bounded by its context, also when the connection to etcd
// drops packets without closing. A Lock whose context ends returns at most
// distsync.CancelGrace later. By then its waiter key is deleted if etcd
// answered; otherwise the deletion goes on in the background until etcd
// answers or the session lease ends. A waiter cut off from etcd also
// fails once its session lease's renewal is overdue, as a holder is told.
//
// # Limits
//
// The guarantees are etcd's: a holder paused longer than its session TTL
// (GC, swap, a stopped VM) can wake up and act before it learns that the
// lock passed on. Only a fencing check at the resource closes that gap.
package mutex
