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
