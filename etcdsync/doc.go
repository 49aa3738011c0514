// Package etcdsync is distsync's Session on etcd: one lease, kept alive,
// from which a program opens the etcd Mutex, RWMutex, Semaphore and
// Election (packages mutex, rwmutex, semaphore and election).
//
//	s, err := etcdsync.NewSession(ctx, client, etcdsync.WithTTL(10*time.Second))
//	...
//	defer s.Close()
//	mu, err := s.Mutex("jobs/nightly-report")
//	lease, err := mu.Lock(ctx)
//
// A Session implements distsync.Session. A program written against that
// interface changes backend by changing the line that creates the Session
// (redissync and zksync have the same one).
//
// # Leases
//
// Every acquisition is a key bound to the Session's current lease. The
// Session renews the lease itself, every third of its TTL, one request at
// a time. A renewal not confirmed within three quarters of the TTL ends
// the lease for the Session, before etcd can expire it: every Lease taken
// under it ends with distsync.ErrLost, and waiting acquisitions fail with
// distsync.ErrLost. So does a lease that was revoked or expired. The
// Session then grants a new lease on the next call, bounded by that
// call's context. Nothing is granted in the background.
//
// # Keys
//
// Names are stored as they are, each under its own prefix "N/" (after the
// Session's WithPrefix, if any). The holders, waiters and candidates of
// N are direct children of "N/"; keys deeper down belong to other names
// ("N/b"), and a name skips them. Keys that are no contenders start with
// a NUL byte. For N = "jobs/nightly", `etcdctl get --prefix jobs/` shows:
//
//	jobs/nightly/694d9a2b1c3e_5f0c…       Mutex holder or waiter; value: identity
//	jobs/nightly/w694d9a2b1c3e_5f0c…      RWMutex writer; value: identity
//	jobs/nightly/r694d9a2b1c3e_5f0c…      RWMutex reader; value: identity
//	jobs/nightly/694d9a2b1c3e_5f0c…       Semaphore holder; value: "weight identity"
//	jobs/nightly/\x00limit                Semaphore limit, while in use; value: the limit
//	jobs/nightly/694d9a2b1c3e_5f0c…       Election candidate; value: the campaign value
//	jobs/nightly/\x00abandoned/694d…      tombstone of an enqueue given up on
//	jobs/nightly/\x00forced/694d…         ForceRelease's note to the holder; value: operator's identity
//
// (one kind per name at a time; "694d9a2b1c3e" is the lease in hex). The
// identity is WithIdentity's, by default "host:pid". These are the keys of
// etcd's concurrency.Mutex and concurrency.Election, so `etcdctl lock N`
// and `etcdctl elect N` interoperate with the Mutex and the Election for
// every name. etcd's own clients count every key under "N/": a key of
// "N/b", or a tombstone, delays `etcdctl lock N` until it is gone.
//
// # Permissions
//
// Every key of name N lies under "N/". An etcd role needs readwrite on the
// prefix "N/" (etcdctl role grant-permission ROLE --prefix readwrite N/),
// or on any prefix of it: readwrite on "jobs/" covers every name under
// "jobs/". With WithPrefix(p), grant p + N + "/" instead. A name outside
// the role's ranges fails with distsync.ErrDenied, at once.
//
// # Inspect and ForceRelease
//
// Session.Inspect reads a name's keys in one etcd transaction, at one
// revision, and orders them by create revision: the queue order. A
// Holder's Token is its key's create revision, which is its Lease's
// fencing token, once acquired. The kind comes from the keys: a stored
// limit makes a semaphore, "r" and "w" keys an RWMutex. Who holds follows
// each kind's rule: the oldest key of a mutex or an election, the readers
// older than every writer (or else the oldest writer), the oldest
// semaphore keys whose weights fit in the limit. TTL is the remaining TTL
// of the key's session lease, one request per distinct lease. etcd tells
// it in whole seconds, rounded down, so a lease with less than a second
// left shows 0; so does one whose TTL etcd refuses to tell the caller.
//
// Inspect cannot know everything. etcd stores no timestamps, so Since is
// always zero. A mutex key and a candidate key look alike: both show as
// distsync.ModeExclusive, and a candidate's Identity is its campaign
// value (or what it last proclaimed). A key written by etcd's own
// concurrency package shows its value as the identity, which is empty
// for a concurrency.Mutex.
//
// Session.ForceRelease deletes the key whose create revision is the
// token, in a transaction that compares that revision, so it never
// deletes a later holder's key. In the same transaction it writes a note,
// "N/\x00forced/<key>", on the holder's own session lease. The deletion
// serves the next waiter at once. The holder's Lease sees its key deleted
// through the watch it keeps on it, reads and deletes the note in one
// request, and ends with distsync.ErrLost and reason
// distsync.LossForceReleased: within a round trip or two of the
// ForceRelease, while it is connected. A waiting acquisition fails the
// same way. If the note cannot be read (etcd unreachable then), the
// reason is distsync.LossDeleted. A note nobody reads (the holder died,
// or is not a distsync client) ends with the holder's session lease.
// The holder may still act for a moment after the next one got the lock:
// fencing tokens cover that.
//
// # Logs and metrics
//
// WithLogger and WithMeterProvider set where the Session's records go.
// Every acquire call is measured. The Session's renewals are recorded as
// renewal requests, one per keep-alive, and one confirmed more than a
// sixth of the TTL after it was due is logged at Warn. Retries inside a
// waiting call and handoffs are logged at Debug; a removal retried in the
// background, and every ForceRelease, at Warn. A Mutex, RWMutex,
// Semaphore or Election opened with the constructors of their packages
// over a *concurrency.Session records through the global MeterProvider,
// and logs nothing; that session's renewals are clientv3's own, and are
// not recorded.
//
// # Closing
//
// Close revokes the current lease (waiting at most one second for etcd),
// which ends every Lease and lets the next holders in at once. Later calls
// fail with distsync.ErrClosed, and no goroutine of the Session remains.
// A client handed to NewSession stays open; Dial's client is closed.
//
// # Errors
//
// Every error wraps exactly one sentinel of package distsync. A refused
// permission or authentication (an etcd user whose role does not cover
// the names) is distsync.ErrDenied, returned at once and never retried.
package etcdsync
