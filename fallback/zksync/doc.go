// Package zksync is distsync's Mutex, RWMutex, Semaphore and Election on
// ZooKeeper, through github.com/go-zookeeper/zk.
//
// # Session
//
// A Session opens the primitives and implements distsync.Session, so a
// program written against distsync's interfaces runs on ZooKeeper by
// creating its Session here. Dial connects to the servers and owns the
// connection; NewSession uses the caller's *zk.Conn and leaves it open.
// Both wait for a ZooKeeper session, bounded by their context:
//
//	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
//	defer cancel()
//	s, err := zksync.Dial(ctx, []string{"zk1:2181", "zk2:2181"}, zksync.WithTTL(10*time.Second))
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	m, err := s.Mutex("jobs/nightly-report")
//
// WithTTL is the ZooKeeper session timeout, which the server may clamp:
// Dial fails with distsync.ErrInvalidConfig when it is not granted as
// asked, and NewSession when the connection has another. With NewSession
// the caller adds its credentials (zk.Conn.AddAuth) before, and closes
// the Session before the connection. With Dial, WithAuth adds them.
//
// Every node a primitive creates is an ephemeral node of the connection's
// ZooKeeper session. A Session lives until Close, across ZooKeeper
// sessions: when one ends (it expired, or go-zookeeper silently opened a
// new one after an expiry), the leases and the waiting acquisitions
// taken in it end with distsync.ErrLost. The next call works in the new
// session.
//
// # Queues
//
// A name maps to one node under the Session's prefix (WithPrefix, see
// NodePath). Every acquisition is a protected ephemeral sequential child
// of it, named
// "_c_<guid>-<kind>-NNNNNNNNNN" like the nodes of go-zookeeper's zk.Lock
// and Curator. Nodes are served in sequence order (FIFO). Each waiter
// watches only what it waits for. A Mutex waiter or an RWMutex writer
// watches the next older node and the one before it: once that one is
// gone, it knows the next older node to be the oldest, and holds at its
// deletion without another look. A reader watches the next older writer.
// A Semaphore waiter near the head of the queue, at most limit + 1 nodes
// back, watches all the nodes ahead of it: it counts every deletion
// ahead of it and holds at the one that lets it in, without another look.
// One further back watches a few of the nodes ahead, enough to keep it
// out, and looks again at the first deletion among them. A release wakes
// a lock waiter or two, or the semaphore waiters near the head, not the
// herd. A Mutex and a zk.Lock on Mutex.Path exclude each other.
//
// A node is created in one transaction with a rewrite of the name's node's
// (empty) data, whose answer gives the new node's czxid and the number of
// children: a lock that nobody else holds or waits for thus holds after
// one round trip, and its Lease then watches the name's children in the
// background. A Semaphore acquisition reads the stored limit first.
//
// The name's node is a container node: ZooKeeper deletes it some time
// after it empties.
//
// # Node layout and holder identity
//
// The name "jobs/nightly" under the default prefix is the node
// /distsync/jobs%2Fnightly; its children, as zkCli's ls shows them:
//
//	_c_<guid>-lock-0000000000      Mutex
//	_c_<guid>-read-0000000001      RWMutex reader
//	_c_<guid>-write-0000000002     RWMutex writer
//	_c_<guid>-permit-0000000003    Semaphore, one permit
//	_c_<guid>-permit.2-0000000004  Semaphore, AcquireN(2)
//	_c_<guid>-latch-0000000005     Election candidate
//
// The data of a lock, read, write or permit node is the Session's holder
// identity (WithIdentity; by default "host:pid"), so zkCli's get shows who
// holds or waits. A latch node's data is the candidate's value. A
// Semaphore's limit is the data of the name's node itself, in decimal.
// go-zookeeper's zk.Lock ignores node data: a zk.Lock and a Mutex on one
// node exclude each other whatever either writes.
//
// # Semaphore
//
// A Semaphore acquisition takes n permits (AcquireN); its node's kind
// carries n ("permit", "permit.3"), so a listing is all a waiter needs to
// count. The oldest nodes whose permits fit in the limit hold, and a
// waiting AcquireN holds back every later acquisition.
//
// The limit is the data of the name's node while the semaphore is in use,
// and only then. An idle node's data is stale: the next user replaces it,
// atomically with its own node's creation. An acquisition or a
// Session.Semaphore with a limit other than the stored one fails with
// distsync.ErrLimitMismatch. SetLimit replaces the stored limit and wakes
// the waiters, so those opened with the old limit fail at once.
//
// # Election
//
// An Election's candidates are nodes of kind "latch" (the naming of
// Curator's LeaderLatch) holding the candidate's value. The lowest node
// leads, so leadership passes in campaign order, and each candidate
// watches only the next older one. Campaign reports leadership only after
// a listing that shows its own node first, read after a watch on that node
// was set and while its session is the connection's current one. The
// term, the Leadership's Token, is the leader node's czxid. Proclaim writes
// the leader node's data, conditional on its data version, and fails with
// distsync.ErrLost or distsync.ErrReleased once leadership has ended.
//
// Observe follows the leader node's data (and, with no leader, the
// election's children), so a waiting candidate joining or leaving wakes no
// observer. ZooKeeper's watches fire once and the server keeps no history
// of changes. So an observer may coalesce states that lasted less than
// about a round trip: a leader that resigned at once, a value proclaimed
// and replaced quickly, and whatever happened while its connection was
// down. What it does deliver it has read from ZooKeeper, in ZooKeeper's
// order: every state it reports really held, terms never decrease, an
// older state never follows a newer one, and after the last change it
// delivers the current state. The etcd and Redis Elections deliver every
// change; use them when an observer must see each one. The observer's
// channel closes only when its context ends, even after the Session was
// closed. The observers of a Session share their watches, so an Observe
// whose context ended leaves no watch that other observers do not use.
//
// # Cancellation and connection loss
//
// Calls take a context, which go-zookeeper's do not. When the context of
// an acquisition ends (Lock, RLock, Acquire, Campaign and the Try forms),
// the call waits for its request in flight and then deletes its node. It
// does so for at most distsync.CancelGrace after the context ended. When
// ZooKeeper answers within that time, nothing is left once the call
// returns: no node, no goroutine, and no watch but those on nodes that
// are still there, which it waited for (a Semaphore waiter near the head
// watches up to limit + 1 of them). go-zookeeper cannot remove a watch;
// ZooKeeper drops it at that node's next change, and waiters of one
// Session on one node share one watch. Past
// CancelGrace the call returns anyway, and the deletion goes on in the
// background until ZooKeeper answers or the session ends.
//
// After a connection loss during a create, whose outcome is unknown, the
// waiter looks for its node by its GUID and adopts it if its session owns
// it. Any failure after the node was created deletes it, if need be in the
// background once the connection is back. A request that gets no answer
// fails once go-zookeeper gives up on the connection: after two thirds of
// the session timeout without a byte from the server.
//
// # Loss
//
// A Lease's Done closes, and Err wraps distsync.ErrLost, when its node is
// deleted, when its session ends, when the Session is closed, and by
// default as soon as the connection drops. While disconnected the client
// cannot know whether the server still holds its session, so ownership is
// uncertain. WithDisconnectGrace keeps leases through a disconnection
// shorter than a third of the session timeout, if the same session comes
// back. A waiting acquisition waits a disconnection out; if its session
// ended meanwhile, it fails with distsync.ErrLost.
//
// distsync.LostReason tells these apart: distsync.LossSessionEnded for an
// expired or replaced session and for Close, distsync.LossDisconnected
// for a disconnection, distsync.LossDeleted for a node deleted from
// outside, and distsync.LossForceReleased for ForceRelease.
//
// # Inspect and ForceRelease
//
// Session.Inspect lists the name's node and reads every child, in two
// round trips. The kind in each child's name gives its mode, and the
// rules the waiters themselves follow say who holds. A Holder's Token is
// its node's czxid, which is the token its Lease has or will have. Its
// Identity is the node's data: the Session's identity, or an election
// candidate's value. Since is the node's creation time by the server's
// clock. TTL is always zero: an ephemeral node lives as long as its
// ZooKeeper session, and Inspect cannot see how long that is. The reads
// are not one snapshot: a node that goes between the listing and its read
// is left out.
//
// Session.ForceRelease finds the child whose czxid is the token. It writes
// a marker over the child's data, then deletes it, both at the data
// version it read; the marker's write also creates and deletes a child of
// the name's node at once. Every Lease and every waiting acquisition
// watches its own node, or the name's children, so its owner learns of it
// at once, within a round trip, and ForceRelease gives it a second to
// delete its node itself before deleting it. The
// owner reads the marker, or finds its node gone right after a change of
// its data it did not make, and ends with distsync.LossForceReleased. An
// owner whose connection is down learns of it when it reconnects, unless
// it has lost its lease to the disconnection already. The next waiter is
// served as on a release. A zk.Lock or a Curator recipe holding the node
// is not told.
//
// # Logging and metrics
//
// WithLogger and WithMeterProvider turn on the records and instruments
// that every backend shares (see the README). ZooKeeper has no renewal to
// record: go-zookeeper pings the server itself. What stands for it is the
// Warn record of a disconnection that ends leases.
//
// # Permissions and TLS
//
// ZooKeeper ACLs are per node and not inherited. Every node distsync
// creates gets the ACL of WithACL (default zk.WorldACL(zk.PermAll)): the
// prefix's missing nodes and the names' nodes (containers), and every
// acquisition node (ephemeral). Under a protected prefix, give the same
// ACL as the prefix's, or the nodes distsync creates there are open to
// everyone.
//
// A digest user under its own root: an administrator creates the root
// with an ACL for that user only, and the user's Session authenticates
// with WithAuth and creates its nodes with that ACL:
//
//	acl := zk.DigestACL(zk.PermAll, "tenant-a", "pw")
//	_, err := admin.Create("/tenant-a", nil, 0, acl) // digest:tenant-a:<base64 sha1>:cdrwa
//	s, err := zksync.Dial(ctx, servers, zksync.WithPrefix("/tenant-a"),
//		zksync.WithAuth("digest", []byte("tenant-a:pw")), zksync.WithACL(acl))
//
// With NewSession, call conn.AddAuth before instead. go-zookeeper sends the
// credentials again on every reconnection and new session. The Session
// needs create, read, write and delete on the root and below (write for a
// Semaphore's limit and for Proclaim). A Session without the credentials
// fails at once with distsync.ErrDenied, from every primitive.
//
// go-zookeeper has no TLS option of its own. Dial a TLS port (the server's
// secureClientPort) through WithDialer:
//
//	tlsConf := &tls.Config{RootCAs: pool, Certificates: clientCerts}
//	dial := func(network, addr string, timeout time.Duration) (net.Conn, error) {
//		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: tlsConf}
//		return d.Dial(network, addr)
//	}
//	s, err := zksync.Dial(ctx, []string{"zk1:2281"}, zksync.WithDialer(dial))
//
// The tls.Dialer checks each server's certificate against its host name.
// With a client certificate, the server's x509 provider authenticates the
// session, and WithACL may then name the certificate's subject
// (scheme "x509").
//
// # Errors
//
// Every error wraps exactly one of distsync's sentinels, and quotes the
// name it concerns as the caller spelled it ("jobs/nightly" is held), with
// the node's path where a node is meant. ZooKeeper's
// refusals (zk.ErrNoAuth, zk.ErrAuthFailed) are distsync.ErrDenied:
// returned at once and never retried, by waits, cleanup or observers, and
// distsync.Run returns them. An ACL the server rejects is
// distsync.ErrInvalidConfig, also never retried.
//
// # Fencing
//
// A Lease's Token (and an Election's term) is its node's czxid, the
// transaction ID that created it: strictly greater for every later
// acquisition on the same ensemble. A resource that remembers the highest
// token it accepted and rejects lower ones is safe even against a holder
// that was paused past its session timeout.
//
// # Limits
//
// The guarantees are ZooKeeper's: a holder paused longer than its session
// timeout can wake up and act before it learns that the lock passed on.
// Only a fencing check at the resource closes that gap.
package zksync
