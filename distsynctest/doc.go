// Package distsynctest is distsync's test kit: what a program that uses
// distsync needs to test itself against real servers, and to see what it
// does when it loses a lock.
//
// It is a module of its own (github.com/distsync/distsync/distsynctest), so
// that etcd's server stays out of the library's module graph: only tests
// import it.
//
// # Servers
//
// [Etcd] starts an etcd member inside the test process, on free loopback
// ports, with its data in a temporary directory, stopped when the test
// ends. It needs nothing installed. Its members tick every 10 ms, so etcd
// grants one-second leases and elects a new leader within a few hundred
// milliseconds. [EtcdCluster] starts several members, which a test can
// stop, restart, isolate from each other and cut off from their clients.
// [StartEtcd] is the same without a *testing.T, for TestMain and for
// programs such as distsync's quickstart.
//
// [Redis] and [ZooKeeper] start the real servers as child processes:
// redis-server, and ZooKeeperServerMain from Debian's zookeeper package.
// When a binary is missing they fail (never skip) with a message that
// names the package to install. Each server type opens Sessions
// (EtcdServer.Session, RedisServer.Session, ZooKeeperServer.Session) closed
// when the test ends. A [Proxy] between one client and its server lets a
// test cut that client off or blackhole it.
//
// # Losses
//
// [Expire] ends the backend session underneath a Session from outside, as
// an expiry would, and [DeleteHolder] deletes one holder's state, as an
// operator's hand would. Both work on every backend. The lease then ends
// with distsync.ErrLost, as it would in production, so a test can check how
// the code reacts: that it stops writing, uses its fencing token, takes the
// lock again. [Entries] lists what a name has left on the server, to check
// that nothing leaks.
//
// # Memory
//
// [Memory] is an in-memory implementation of the whole contract, for unit
// tests that need no server: one process, no I/O, no time. Its Sessions
// lose their leases only on [Expire], [DeleteHolder], ForceRelease, Close or
// [MemorySession.Disconnect]. It passes the same conformance suite as the
// three backends.
//
// # The conformance suite
//
// [TestSession] runs distsync's conformance suite on any implementation of
// the contract, in the spirit of testing/fstest.TestFS. distsync's own
// backends run through it, and so does [Memory].
package distsynctest
