// Package rwmutex is distsync's distributed reader/writer lock on etcd.
// Open one from an etcd Session:
//
//	s, err := etcdsync.NewSession(ctx, client, etcdsync.WithTTL(10*time.Second))
//	...
//	rw, err := s.RWMutex("config/routes")
//	read, err := rw.RLock(ctx)
//
// The RWMutex is a *RWMutex and its leases are *Lease values. New opens
// one over a *concurrency.Session of your own, never renewed (see package
// mutex).
//
// # Semantics
//
// Any number of read leases (RLock) may be held at once, or one write
// lease (Lock), never both. Every acquisition is a key under the name's
// prefix bound to the Session's current lease: readers are
// "N/r<lease hex>_<random hex>", writers "N/w<lease hex>_<random hex>",
// direct children of "N/" (see the mutex package for the layout). Order is the keys' create revisions, which is
// arrival order:
//
//   - a reader waits only for the newest writer older than itself, so a
//     release wakes only the readers (and the writer) that may proceed;
//   - a writer waits for the newest older key of any kind.
//
// A reader that arrives after a waiting writer therefore waits behind it:
// a steady stream of readers cannot starve a writer, and a writer cannot
// starve the readers queued before it.
//
// Unlike etcd's experimental recipe RWMutex, every call takes a context,
// a cancelled call leaves no key behind, and each Lease reports loss (its
// key deleted, its session lease expired or revoked, its renewal
// unconfirmed, its Session closed) like a distsync Mutex's (see package
// mutex). After a loss of the session lease, the same RWMutex locks
// again under a new lease.
//
// Fencing: Token is the key's create revision, strictly greater for every
// later acquisition of any kind. Readers that overlap carry different
// tokens; a resource that accepts reads need not check them, and one that
// accepts writes rejects a write token lower than the highest it has seen.
package rwmutex
