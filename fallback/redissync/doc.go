// Package redissync is distsync's Mutex, RWMutex, Semaphore and Election
// on Redis, for services that have Redis and no etcd. Open a Session with
// NewSession on your go-redis client, or with Dial. Any
// redis.UniversalClient works: a single server, Sentinel or Cluster. The
// Session opens the four primitives and implements distsync.Session, so a
// program written against distsync's interfaces changes backend by
// changing one line. The package holds the distsync contract as far as
// Redis allows; the limits are below.
//
//	s, err := redissync.NewSession(ctx, client) // ctx bounds the setup
//	...
//	defer s.Close()
//	mu, err := s.Mutex("jobs/nightly-report")
//	lease, err := mu.Lock(ctx)
//
// # Semantics
//
// A name's state is a few keys sharing the hash tag "{name}". Its '%',
// '{' and '}' are percent-encoded, so that names never share a tag and all
// keys of one name live in one Cluster slot. The holders are a sorted set
// scored by their expiry in server time. The waiters are a sorted set in
// arrival order, with their own expiry so that a crashed waiter is
// reclaimed. Beside them are a counter for fencing tokens, the semaphore
// limit while in use and, for an election, a capped stream of its changes.
// Each member of the sets names its kind, TTL, weight (a semaphore's
// permits) and Session.
//
// # Key layout
//
// With the prefix P (WithPrefix, "distsync:" by default), the name
// "jobs/nightly" has these keys:
//
//	P{jobs/nightly}:h      sorted set: holder member -> expiry (ms, server time)
//	P{jobs/nightly}:q      sorted set: waiter member -> arrival number
//	P{jobs/nightly}:qx     sorted set: waiter member -> expiry (ms, server time)
//	P{jobs/nightly}:tok    hash: member -> fencing token, "i"+member -> identity,
//	                       "t"+member -> arrival (ms, server time),
//	                       "m"+member -> mode (exclusive, read, write, permit),
//	                       "v"+member -> an election candidate's value
//	P{jobs/nightly}:seq    string: the counter of tokens and arrivals
//	P{jobs/nightly}:limit  string: a semaphore's limit, while in use
//	P{jobs/nightly}:hist   stream: an election's changes (fields t, v)
//	P{jobs/nightly}:fr     string: members ForceRelease removed, one a line,
//	                       until their owners are told (expires within a TTL)
//	P{jobs/nightly}:ch     channel: an election's observers
//	Psession:<id>          channel: one Session's grants
//
// A member is "<kind>|<ttl ms>|<weight>|<session id>|<n>". Kind x is
// exclusive (a Mutex, a writer, a candidate); kind s is shared (a reader,
// a semaphore's permits, weight of them).
//
// # Holder identity
//
// Every holder and waiter records its Session's identity (WithIdentity,
// "host:pid" by default) in the tokens hash, field "i" followed by its
// member. The identity is stored as given: the field name, not the value,
// carries the member, so any printable text is unambiguous. It goes with
// its member: on release, on expiry (reclaimed by the next script on the
// name), and at the next renewal of a holder deleted from outside. To see
// who holds a name:
//
//	redis-cli ZRANGE 'distsync:{jobs/nightly}:h' 0 -1
//	1) "x|10000|1|adba31bae63aa4a2|1"
//	redis-cli HGET 'distsync:{jobs/nightly}:tok' 'ix|10000|1|adba31bae63aa4a2|1'
//	"web-1:4242"
//
// An election's value stays what the candidate campaigns with (field "v"
// followed by the member).
//
// Lua scripts do every step (acquire, renew, release, re-check)
// atomically, using only the server's clock (TIME). They compare the
// caller's unique member, so a late or repeated Release never frees
// someone else's lease.
//
// Fairness: requests are granted in arrival order (FIFO) on every
// primitive. A release promotes the waiters at the head of the queue that
// fit, in the same script. It publishes their names on their Sessions' own
// channels; a waiter sleeps on its Session's one pub/sub connection until
// it is named. So a release sends one message to one Session. The
// release's reply names the same waiters, and a waiter in the releasing
// process (of any of its Sessions) is woken by that reply at once, without
// waiting for the message to come back through the server. The woken
// waiter needs no further round trip: the grant happened after the server
// last saw it waiting, so its lease's deadline counts from that earlier
// request. (A waiter that slept too long for that confirms with a
// renewal.) Nobody polls. A waiter also re-checks when the earliest
// holder's TTL runs out, to reclaim a crashed holder, and every TTL/3, to
// keep its own entry alive. Try* calls fail with distsync.ErrWouldBlock
// when anyone holds or waits, so they never jump the queue. The RWMutex is
// writer-preferring: a reader waits behind any writer that arrived before
// it.
//
// # Fencing
//
// Token is the name's counter, advanced by the script that grants the
// lease: strictly greater for every later acquisition of the name. Each
// number the counter hands out is max(counter+1, the server's TIME in
// microseconds). So a server that lost the last increments still goes on
// above every token issued before: a replica that missed them and was
// promoted, or a server restarted with or without its data. That holds
// while the new server's clock lags the old one's by less than the
// failover took (from the old server's last token to the new server's
// first). Subtract the counter's lead over its own clock: at most one
// microsecond per waiter that one release grants, or more after the old
// server's clock stepped back. With clocks kept within a few milliseconds
// (NTP) and failovers slower than that, tokens never repeat or go
// backwards. While two masters accept writes at once (before Sentinel
// demotes the old one), their tokens interleave by their clocks.
//
// The counter is one small key per name that outlives the name's use (it
// must, or tokens would restart); nothing else is kept per acquisition. A
// resource that remembers the highest token it accepted and rejects lower
// ones is safe against a holder paused past its TTL. It is also safe
// against a lock lost in a failover.
//
// # Loss
//
// Every lease is renewed every TTL/3 by its own goroutine. Done closes and
// Err wraps distsync.ErrLost when a renewal finds the lease gone (expired,
// deleted, or the server restarted empty). The same happens when Redis
// refuses the renewal (a refusal is not retried), and when no renewal was
// confirmed within TTL-TTL/5 of being sent. That deadline is measured on
// the monotonic clock, so it passes before Redis can expire the lease
// (given clocks that run at similar rates). A deletion from outside is
// noticed at the next renewal, within TTL/3. A lost lease ends only
// itself: the Session and its primitives go on.
//
// distsync.LostReason tells why: LossForceReleased after
// Session.ForceRelease, LossDeleted when the state was otherwise gone
// (deleted from outside, or a server that restarted empty),
// LossRenewal when no renewal was confirmed in time, Redis refused one,
// or one found the lease expired, and LossSessionEnded after Close.
//
// # Inspect and ForceRelease
//
// Session.Inspect runs one script: an atomic snapshot of the name's
// holders and waiters, after expired ones are reclaimed. It needs no
// knowledge of the primitive: every member records its identity, mode
// and arrival time in the tokens hash. Holders come in token order,
// waiters in arrival order, which is the order they are served in. A
// holder's Token is its fencing token. A waiter's is its arrival number:
// it comes from the same counter, so it is unique among the name's
// holders and waiters, and the waiter's Lease gets a greater token once
// granted. Since is the arrival by the server's clock: for a holder
// that waited, when it began waiting. TTL is how long Redis keeps the
// member unless it is renewed (its expiry minus the server's TIME).
// Limit is the semaphore's stored limit. Inspect cannot know a
// primitive that nobody holds or waits for, nor a value's Proclaim
// history (see Election.Observe). Members written by an older version
// of this package, which recorded no mode, show exclusive or, for shared
// ones, read (permit when a limit is stored).
//
// Session.ForceRelease runs one script that finds the holder by its
// fencing token, or the waiter by its arrival number, and deletes only
// it. It promotes the waiters that now fit at once, as a release does.
// It leaves a line naming the member in the key "fr", which expires after
// the member's TTL. A removed holder is not subscribed to anything, so it
// learns of the removal at its next renewal, at most TTL/3 later (plus a
// round trip): the renewal finds the line, and the lease ends with
// LossForceReleased. Until then the old holder may still act while the
// next one holds: fencing tokens cover that. Proclaim by a removed leader
// fails at once with the same reason. A removed waiter is woken at once
// by a re-check request on its Session's channel, finds the line, and its
// acquisition fails with LossForceReleased. The line goes when its owner
// is told or releases, or expires. ForceRelease is logged at Warn with the
// name, the token, the removed member's identity and the operator's.
//
// # Logs and metrics
//
// WithLogger and WithMeterProvider record what the README lists under
// "Metrics". On Redis, every renewal request of a lease is one
// distsync.renewal.duration measurement. A renewal that failed is logged
// at Warn. So is one confirmed more than TTL/12 after it was due (it
// needed a retry, or the server was slow), with the time that was left.
// When a cancelled acquisition cannot delete its entry, the deletion is
// retried in the background, logged at Warn, until it succeeds or a TTL
// has passed (the entry has expired then). Debug records handoffs (a
// waiter granted by a release, from its grant message), and the retries
// inside Lock, Campaign and Observe.
//
// # Contexts and unresponsive servers
//
// Every call returns when its context ends, also when Redis does not
// answer and the connection stays open (a paused server, a network that
// drops packets). go-redis alone does not do that. It waits for a reply
// until the client's ReadTimeout (3 s by default), or the context's
// deadline only with ContextTimeoutEnabled, and never stops at a
// cancellation. So each request runs in a goroutine, and the caller stops
// waiting when its context ends. The abandoned request ends when the
// client gives up on it: at its ReadTimeout, or the context's deadline
// with ContextTimeoutEnabled. Do not set ReadTimeout to -1, or it may
// never end.
//
// With ContextTimeoutEnabled (on a *redis.Client or *redis.ClusterClient),
// the first try of an acquisition and a Release run on the caller's
// goroutine instead, under a deadline of half distsync.CancelGrace (or the
// context's, if sooner): handing a request to another goroutine costs about
// as much as the request on a small machine. A cancellation then takes
// effect when Redis answers or at that deadline, and the call still returns
// within distsync.CancelGrace of it. A request not answered by the deadline
// is sent again in a goroutine; an acquisition whose request may run after
// its caller gave up leaves a short-lived record (for the TTL) that makes
// that request do nothing. Enable ContextTimeoutEnabled: an uncontended
// Lock and Release is faster with it (BENCHMARKS.md, S1).
//
// An acquisition whose context ended waits at most distsync.CancelGrace
// for Redis to delete what it wrote. After that the deletion goes on in
// the background until Redis answers or the Session closes; otherwise the
// entry expires within the TTL. Session.Close returns within about a
// second.
//
// # Limits
//
// Redis is not a consensus system. With replication, an acknowledged
// acquisition can be lost in a failover before it reached a replica, and
// two clients can then hold the same lock. WithReplicas narrows this
// window by waiting for replicas, but does not close it. With persistence
// off, a restarted server forgets every lease (holders are then told at
// their next renewal). A holder paused longer than its TTL (GC, swap, a
// stopped VM) can act before it learns that the lease passed on. Only a
// fencing check at the resource closes these gaps.
//
// # Misconfiguration
//
// These are errors when opening: a TTL below 100 ms or not whole
// milliseconds, a WithReplicas out of range, a prefix or identity that
// WithPrefix or WithIdentity rejects, a nil client, a semaphore
// limit below 1 (distsync.ErrInvalidConfig), and an invalid name
// (distsync.ErrInvalidName). On a *redis.ClusterClient the Session checks
// that all keys of the name hash to one slot, at no I/O cost: a Cluster
// rejects a script whose keys span slots. A semaphore used with two
// different limits fails with distsync.ErrLimitMismatch.
//
// # Permissions
//
// Redis may refuse the user (NOPERM, NOAUTH, WRONGPASS, or a script
// refused a key, channel or command), or be unable to run scripts (EVALSHA
// or SCRIPT renamed away). Calls then fail with distsync.ErrDenied at
// once, and nothing retries it: not Lock, not renewal, not the pub/sub
// connection, not distsync.Run. NewSession loads the scripts and
// subscribes, so a user without scripting or without the channels fails
// there. A user without the keys fails at the first call on a name.
//
// A Redis ACL user for distsync needs these commands:
//
//	EVALSHA, EVAL, SCRIPT LOAD   the scripts (EVAL when the script cache was flushed)
//	SUBSCRIBE, UNSUBSCRIBE, PING the Session's pub/sub connection
//	WAIT                         only with WithReplicas
//
// Redis checks what a script does against the user too, so it also needs
// TIME, GET, SET, DEL, EXISTS, ZADD, ZREM, ZCARD, ZRANGE, ZRANGEBYSCORE,
// ZSCORE, HSET, HGET, HMGET, HDEL, XADD, XRANGE, XREVRANGE and PUBLISH.
// Inspect and ForceRelease need nothing more.
//
// Every key and channel starts with the Session's prefix P (WithPrefix;
// "distsync:" by default). Its key pattern is "P*", or "P{NAME}:*" for
// each name it uses. Its channel pattern is "P*", or "Psession:*" (every
// Session's own channel, which other Sessions' releases publish to) and
// "P{NAME}:ch" (an election's observers). Here NAME has its '%', '{' and
// '}' percent-encoded. For example, for the prefix "app:"
// (TestDocumentedACLPrefix runs with it):
//
//	ACL SETUSER app on >secret ~app:* &app:*
//	    +evalsha +eval +script|load +subscribe +unsubscribe +ping
//	    +time +get +set +del +exists +zadd +zrem +zcard +zrange +zrangebyscore
//	    +zscore +hset +hget +hmget +hdel +xadd +xrange +xrevrange +publish
//
// With the default prefix, write ~distsync:* &distsync:* instead
// (TestDocumentedACL). A user without its prefix's keys or channels fails
// with distsync.ErrDenied at NewSession. The pattern "P*" also matches a
// longer prefix that starts with P ("app:*" matches "app:x:..."), so give
// confined applications prefixes where none starts with another.
//
// A go-redis client may need more for itself (HELLO, CLIENT SETINFO, and
// CLUSTER SLOTS on a Cluster).
package redissync
