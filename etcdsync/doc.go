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
