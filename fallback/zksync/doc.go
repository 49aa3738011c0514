// Package zookeeper is distsync's Mutex, RWMutex, Semaphore and Election on
// ZooKeeper, through github.com/go-zookeeper/zk.
//
// # Semantics
//
// A Session is one ZooKeeper connection and session, shared by the
// primitives built on it (NewMutex, NewRWMutex, NewSemaphore,
// NewElection). A name maps to one node under the Session's root (see
// NodePath); every acquisition is
// a protected ephemeral sequential child of it, named
// "_c_<guid>-<kind>-NNNNNNNNNN" like the nodes of go-zookeeper's zk.Lock and
// Curator, and nodes are served in sequence order (FIFO). Each waiter
// watches only what it waits for: a Mutex waiter or an RWMutex writer the
// next older node, a reader the next older writer, a Semaphore waiter its
// limit next older nodes. A release wakes the next waiter, not the herd. A
// Mutex and a zk.Lock on Mutex.Path exclude each other. An acquisition
// that holds at once costs two round trips, like zk.Lock's: the create,
// then the watch on its own node (which also gives the czxid) and the
// listing, sent together.
//
// The name's node is a container node: ZooKeeper deletes it once it is
// empty. A Semaphore stores its limit as the node's data and fails with
// distsync.ErrLimitMismatch when opened with another one.
//
// # Election
//
// An Election's candidates are nodes of kind "latch" (the naming of
// Curator's LeaderLatch) holding the candidate's value; the lowest node
// leads, so leadership passes in campaign order, and each candidate watches
// only the next older one. Campaign reports leadership only after a
// listing that shows its own node first, read after a watch on that node
// was set and while its session is the connection's current one; a
// campaign whose session ends while it waits fails with distsync.ErrLost
// (it does not queue again unseen). The term, the Leadership's Token, is the
// leader node's czxid. Proclaim writes the leader node's data, conditional
// on its data version, and fails with distsync.ErrLost or
// distsync.ErrReleased once leadership has ended. distsync.Run works with
// an Election.
//
// Observe follows the leader node's data (and, with no leader, the
// election's children), so a waiting candidate joining or leaving wakes no
// observer. ZooKeeper's watches fire once and the server keeps no history
// of changes, so an observer may coalesce states that lasted less than
// about a round trip: a leader that resigned at once, a value proclaimed
// and replaced quickly, and whatever happened while its connection was
// down. What it does deliver it has read from ZooKeeper in the order of
// ZooKeeper's own history: every state it reports really held (a leader at
// that term, a value proclaimed at that term), terms never decrease, an
// older state never follows a newer one, and after the last change it
// delivers the current state. The etcd and Redis Elections deliver every
// change; use them when an observer must see each one. The observer's
// channel closes only when its context ends, even after the Session was
// closed. The observers of a session share their watches, and an election
// with no node is watched through its nearest existing ancestor's
// children, so an Observe whose context ended leaves no watch that other
// observers do not use.
//
// # Failures
//
// Calls take a context, which go-zookeeper's do not. When the context of
// an acquisition ends (Lock, RLock, Acquire, Campaign and the Try forms),
// the call waits for its request in flight and then deletes its node. It
// does so for at most distsync.CancelGrace after the context ended. When
// ZooKeeper answers within that time, nothing is left once the call
// returns: no node, no goroutine, and no watch but one on a node that is
// still there. (go-zookeeper cannot remove a watch; ZooKeeper drops it at
// that node's next change, and waiters on one node share one watch.) Past
// CancelGrace the call returns anyway, and the deletion goes on in the
// background until ZooKeeper answers or the session ends. Other calls
// (Leader, Proclaim, Release) also wait up to CancelGrace for a request in
// flight after their context ended, to learn its outcome.
//
// After a connection loss during a create, whose outcome is unknown, the
// waiter looks for its node by its GUID and adopts it if its session owns
// it. Any failure after the node was created deletes it, if need be in the
// background once the connection is back: an orphaned node would block the
// name for the life of the session. A request that gets no answer fails
// once go-zookeeper gives up on the connection (two thirds of the session
// timeout without a byte from the server), so a background cleanup never
// waits forever on a silent connection.
//
// # Fencing
//
// A Lease's Token (and an Election's term) is its node's czxid, the
// transaction ID that created it:
// strictly greater for every later acquisition on the same ensemble. A
// resource that remembers the highest token it accepted and rejects lower
// ones is safe even against a holder that was paused past its session
// timeout.
//
// # Loss
//
// A Lease's Done closes, and Err wraps distsync.ErrLost, when its node is
// deleted, when its session expires (or go-zookeeper silently replaces it
// by a new one after an expiry), when the Session is closed, and by default
// as soon as the connection drops: while disconnected the client cannot
// know whether the server still holds its session, so ownership is
// uncertain. WithDisconnectGrace keeps leases through a disconnection
// shorter than a third of the session timeout, if the same session comes
// back. A waiter survives a disconnection; if its session expired
// meanwhile, it queues again in the new one. A Campaign instead fails with
// ErrLost when its session's leases would end.
//
// # Limits
//
// The guarantees are ZooKeeper's: a holder paused longer than its session
// timeout can wake up and act before it learns that the lock passed on.
// Only a fencing check at the resource closes that gap.
package zksync
