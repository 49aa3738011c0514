// Package etcdq is the etcd waiter queue shared by distsync's etcd
// primitives: keys under a name's prefix ordered by create revision, each
// waiter watching only what it waits for, and the Lease that follows a held
// key until it is released or lost.
//
// A waiter keeps a synced watch (started at the current revision, so the
// etcd server serves it at once rather than from its 100 ms catch-up loop)
// on its predecessor, and on the predecessor's delete asks, in one Txn, "is
// my key still there, and is any older key left?". That Txn reads at the
// revision of the delete, serializably, with no quorum round: being first
// is monotone (later keys get later revisions), so the answer at that
// revision holds from then on.
//
// In a short queue a waiter also watches the key before its predecessor,
// and asks when that one goes. Once it knows its predecessor to be the
// oldest key, the predecessor's delete event alone makes it the holder:
// a handoff then costs one commit and one watch event, the ask having
// happened while the predecessor held. An election's candidate always
// asks after the last delete (Class.Confirm).
package etcdq
