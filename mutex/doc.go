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
// order (FIFO). Each waiter watches its predecessor, and in a short queue
// the key before it too: a release wakes the next waiter, which holds the
// lock on that event alone (it learned, while its predecessor held, that
// no older key was left), and the one after it, which asks whether it is
// now next. Further back in a long queue, a release wakes one waiter,
// which learns in one round trip that it holds the lock. Two
// Lock calls through the same Session exclude each other, unlike etcd's
// concurrency.Mutex.
//
// # Keys
//
// Names are stored as they are. A holder or waiter of name N is the key
// "N/<lease hex>_<random hex>", a direct child of "N/": the layout of
// etcd's concurrency.Mutex. So a distsync Mutex and `etcdctl lock N` (or
// concurrency.NewMutex(s, "N")) exclude each other for every name, with
// or without '/'. A name counts only the direct children of "N/" as
// contenders and skips deeper keys, so "a" and "a/b" never interfere
// (the keys of "a/b" are "a/b/…"). Keys that are no contenders start with
// a NUL byte after "N/", which no valid name contains: tombstones of
// abandoned requests are "N/\x00abandoned/<child>". etcd's own clients
// count every key under "N/", so a key of "N/b", or a tombstone (rare,
// bound to the session lease), delays `etcdctl lock N` until it is gone.
//
// Every key of N lives under "N/". An etcd role with readwrite on the
// prefix "P/" can use every name under "P/"; a name N needs readwrite on
// the prefix "N/" and nothing else.
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
// waiting starts that watch three round trips after it was taken (at
// least 1 ms, at most 10 ms: most such locks are released sooner, and a
// watch costs the server more than the lock), reading the key then: a
// deletion within that time is reported up to that much later than one
// after it. A loss of the session lease is reported at once either way.
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
