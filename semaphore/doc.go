// Package semaphore is distsync's distributed counting semaphore on etcd:
// at most limit permits are held at any time across all clients. etcd
// itself has no semaphore. Open one from an etcd Session:
//
//	s, err := etcdsync.NewSession(ctx, client, etcdsync.WithTTL(10*time.Second))
//	...
//	jobs, err := s.Semaphore(ctx, "render-jobs", 4)
//	permit, err := jobs.Acquire(ctx)
//
// The Semaphore is a *Semaphore and its leases are *Lease values. New
// opens one over a *concurrency.Session of your own, never renewed (see
// package mutex).
//
// # Semantics
//
// Every acquisition is a key "N/<lease hex>_<random hex>", a direct child
// of the name's prefix "N/", bound to the Session's current lease, whose
// value is its weight (the number of permits it takes, 1 for Acquire).
// Keys of deeper names ("N/b/…") are skipped. Keys are served in create-revision
// order: a key holds when the weights of all older keys plus its own are
// at most the limit. So permits are granted in arrival order, and a
// waiting acquisition of n permits is not overtaken by later, smaller ones
// (no starvation of large requests, as with golang.org/x/sync/semaphore).
//
// A waiter reads the older keys once and then follows the delete events of
// the prefix: a release costs the waiters no round trip until one of them
// may proceed, which then needs none either.
//
// # The limit
//
// The limit is stored with the semaphore (the key LimitKey(name), that is
// "N/\x00limit": under the prefix, but no contender) while
// anyone holds or waits for a permit, and only then. The acquisition that
// finds the semaphore idle stores its limit, in the transaction that
// enqueues it; a limit left by holders that expired is replaced then.
// Every other acquisition checks the stored limit in that transaction, and
// a waiter follows it: a limit other than its own fails with
// distsync.ErrLimitMismatch, never silent over-admission. The release of
// the last key deletes the limit, so an idle semaphore leaves nothing.
//
// SetLimit changes the stored limit (if the semaphore is in use) and the
// Semaphore's own. Permits already held are kept, also when the limit is
// lowered. Other clients still using the old limit get ErrLimitMismatch
// until they SetLimit too.
//
// # Loss and fencing
//
// A permit's Lease reports loss like a Mutex's (see package mutex). Its
// Token is the key's create revision, strictly increasing in acquisition
// order; holders of one semaphore overlap, so a fenced resource compares
// tokens per permit slot or per holder, not globally.
package semaphore
