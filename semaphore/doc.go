// Package semaphore is distsync's distributed counting semaphore on etcd:
// at most limit permits are held at any time across all clients. etcd
// itself has no semaphore.
//
// # Semantics
//
// Every acquisition is a key under the name's prefix, bound to the
// session's lease, whose value is its weight (the number of permits it
// takes, 1 for Acquire). Keys are served in create-revision order: a key
// holds when the weights of all older keys plus its own are at most the
// limit. So permits are granted in arrival order, and a waiting
// acquisition of n permits is not overtaken by later, smaller ones (no
// starvation of large requests, as with golang.org/x/sync/semaphore).
//
// A waiter reads the older keys once and then follows the delete events of
// the prefix: a release costs the waiters no round trip until one of them
// may proceed, which then needs none either.
//
// # The limit
//
// The limit is stored with the semaphore (the key LimitKey(name)) by the
// first client that uses it, and every acquisition checks it in the same
// transaction: a client that opens the semaphore with another limit gets
// distsync.ErrLimitMismatch, never silent over-admission. To change the
// limit on purpose, call SetLimit, then open the semaphore with the new
// limit; clients still using the old one get ErrLimitMismatch on their next
// acquisition, and permits already held are kept until released (lowering
// the limit does not revoke them). The limit key is not bound to a session:
// it is configuration, and DeleteLimit removes it.
//
// # Loss and fencing
//
// A permit's Lease reports loss like a Mutex's (see package mutex). Its
// Token is the key's create revision, strictly increasing in acquisition
// order; holders of one semaphore overlap, so a fenced resource compares
// tokens per permit slot or per holder, not globally.
package semaphore
