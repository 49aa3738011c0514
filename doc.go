// Package distsync is the contract shared by every distsync primitive:
// distributed Mutex, RWMutex, counting Semaphore and leader Election, on
// etcd (package etcdsync, with the primitives in packages mutex, rwmutex,
// semaphore and election) and, expressed the same way, on Redis and
// ZooKeeper (packages fallback/redissync and fallback/zksync).
//
// # Sessions
//
// A program opens one [Session] per backend and opens its primitives from
// it. Every backend's Session implements the interface, so a program written
// against it changes backend by changing the line that creates the Session:
//
//	s, err := etcdsync.NewSession(ctx, etcdClient, etcdsync.WithTTL(10*time.Second))
//	// or: redissync.NewSession(ctx, redisClient, redissync.WithTTL(10*time.Second))
//	// or: zksync.Dial(ctx, []string{"127.0.0.1:2181"}, zksync.WithTTL(10*time.Second))
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	mu, err := s.Mutex("jobs/nightly")
//
// A Session lives until Close. When the backend's own session underneath
// ends, the leases taken under it end as lost, and the Session goes on with
// a new one.
//
// # The contract
//
// Every acquisition returns a [Lease]: one held lock, read lock, permit or
// leadership. A Lease carries a fencing token that is strictly greater than
// every token issued earlier for the same name on the same backend, a Done
// channel that is closed when the lease ends (released or lost), and an Err
// that says why it ended. A Lease is never returned together with a nil error
// when it is not held, and a lost lease is always reported: Done closes and
// Err wraps [ErrLost] with the cause.
//
// Every failure is one of the sentinel errors of this package, wrapping the
// backend's error and, when a context ended, the context's error, so callers
// test with [errors.Is]:
//
//	lease, err := mu.Lock(ctx)
//	switch {
//	case errors.Is(err, context.DeadlineExceeded): // gave up waiting; nothing left behind
//	case errors.Is(err, distsync.ErrUnavailable):  // the backend could not be reached; may pass
//	case errors.Is(err, distsync.ErrDenied):       // refused credentials or permission; will not pass
//	case err != nil:
//	}
//
// ErrUnavailable may pass, and blocking calls retry it within their
// context. ErrDenied and ErrInvalidConfig do not: they are returned at once
// and never retried, by the calls, by Run or in the background.
//
// # Leader election
//
// An [Elector] turns any [Election] into a Kubernetes-style elector: it
// calls OnStartedLeading with a context that is cancelled the moment
// leadership is lost, calls OnStoppedLeading as soon as the loss is known,
// releases leadership after a shutdown only once that work returned,
// reports every change of leader to OnNewLeader, and campaigns again after
// a loss. IsLeader and Leader answer without a round trip, and Healthz is
// a liveness check that fails while the work outlives its leadership.
// [Run] is a one-off Elector.
//
// # Operations
//
// Every Session logs to an *slog.Logger and records OpenTelemetry metrics
// when given them (each backend's WithLogger and WithMeterProvider; silent
// and no-op by default). Session.Inspect shows who holds and who waits for
// a name, and Session.ForceRelease removes a stuck holder on purpose: its
// Lease ends with ErrLost, and [LostReason] says [LossForceReleased].
//
// # Backends
//
// The etcd Session is package etcdsync and its primitives are packages
// mutex, rwmutex, semaphore and election; the same Session and four
// primitives exist on Redis (package fallback/redissync) and on ZooKeeper
// (package fallback/zksync). Each backend is held to one conformance suite
// (the integration directory of the repository), through its Session.
//
// # What the guarantees rest on
//
// A distributed lock is only as safe as the backend's view of time and
// membership. A holder that is paused (GC, swap, a stopped VM) for longer
// than its lease TTL can resume believing it still holds the lock after the
// backend has handed it to someone else; a clock that jumps does not affect
// distsync's own deadlines (they use the monotonic clock) but can affect the
// backend's. Done closes as soon as the library learns of the loss, but no
// library can tell a paused process anything while it is paused. The fencing
// token covers that gap: pass Token to the resource you protect and have it
// reject any write carrying a token lower than one it has already seen (see
// [Lease] and the examples of package mutex).
//
// # Names
//
// Names are validated by [ValidateName] when a primitive is constructed: a
// name is non-empty, at most [MaxNameLen] bytes of valid UTF-8 and holds no
// control characters. Any other character, '/' included, is allowed, and two
// different names never interfere: each backend encodes the name so that "a"
// and "a/b" are different locks.
package distsync
