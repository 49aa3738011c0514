// Package election is distsync's leader Election on etcd, the reference
// implementation of the distsync.Election contract. Open one from an etcd
// Session:
//
//	s, err := etcdsync.NewSession(ctx, client, etcdsync.WithTTL(10*time.Second))
//	...
//	e, err := s.Election("services/billing")
//	err = distsync.Run(ctx, e, []byte("replica-1"), callbacks)
//
// The Election is an *Election and its leaderships are *Leadership values.
// New opens one over a *concurrency.Session of your own, never renewed
// (see package mutex).
//
// # Semantics
//
// An Election is a name on an etcd Session. Campaign enqueues a candidate
// key under the name's prefix holding the candidate's value, bound to the
// Session's current lease. The leader is the candidate with the oldest
// key, so leadership passes in campaign order. Each candidate watches only its
// predecessor: a resignation wakes one candidate, which learns in one round
// trip that it leads. Campaign re-checks its own key in that round trip,
// so it never reports leadership after its lease died (etcd's
// concurrency.Election can), and a failed or cancelled Campaign deletes its
// key. Two Campaign calls through the same Session are two candidates.
//
// A candidate of name N is the key "N/<lease hex>_<random hex>" holding the
// campaign value, a direct child of the prefix "N/" that etcd's
// concurrency.Election and `etcdctl elect N` use, so either side sees the
// other's candidates and leader, for every name. The leader is the direct
// child with the oldest create revision; deeper keys (those of "N/b") are
// skipped, so "a" and "a/b" never interfere. A role needs readwrite on the
// prefix "N/" (see the mutex package for the whole layout).
// An Election and a distsync Mutex of the same name share one queue: a
// lock holder would count as the leader. Give them different names.
//
// # Terms and fencing
//
// A Leadership's Token is its term: the create revision of the leader key,
// strictly greater for every later leader. Observers see the same term
// (distsync.Leader.Term), so a resource can reject the writes of a leader
// whose term is below the highest it has seen. On etcd itself, put
// Leadership.IsOwner in the If of a Txn to make a write conditional on
// still leading; Proclaim does exactly that.
//
// # Loss and failover
//
// A Leadership's Done closes, and Err wraps distsync.ErrLost, when its key
// is deleted (by anyone, or by the revocation or expiry of the session
// lease), when the Session is closed, or when the session lease's renewal
// has not been confirmed for three quarters of its TTL (on the monotonic
// clock, so before etcd can expire it and elect someone else). Release
// (resigning) hands leadership over within one watch event and one round
// trip; a leader that crashes without resigning is replaced once etcd
// expires its lease, about one TTL later.
//
// A candidate that lost its leadership campaigns again through the same
// Election: the Session grants a new lease on the next call, so
// distsync.Run goes on across lease losses. Every call is bounded by its
// context, also when the connection drops packets without closing. A
// Campaign whose context ends returns at most distsync.CancelGrace later.
// Its key is deleted by then if etcd answered, else in the background.
//
// # Observing
//
// Leader reads the current leader; Observe delivers every change: each new
// leader, each proclaimed value and "no leader", in etcd's order, without
// skipping any unless etcd compacted the history while the observer was
// cut off (it then delivers the current state). Neither needs a lease, so
// both follow the election across the Session's lease changes. distsync.Run builds a
// Kubernetes-style elector (started leading with a context, stopped
// leading, new leader) on any distsync.Election, this one included.
//
// # Limits
//
// The guarantees are etcd's: a leader paused longer than its session TTL
// (GC, swap, a stopped VM) can wake up and act before it learns that it
// was replaced. Only a fencing check at the resource closes that gap.
package election
