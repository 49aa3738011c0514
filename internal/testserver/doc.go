// Package testserver starts the real servers distsync's tests run against,
// inside or beside the test process, and checks that a test package leaves no
// goroutine behind.
//
//   - [StartEtcd] runs one embedded etcd member on loopback TCP ports chosen by
//     the kernel; a package shares it through [RunWithEtcd] in its TestMain.
//   - [NewCluster] runs a multi-member etcd cluster (etcd's own integration
//     framework) whose members a fault test can stop, restart, isolate from
//     their peers or cut off from their clients.
//   - [Run] and [Main] wrap testing.M with a goroutine-leak check that runs after the
//     servers are stopped, so a goroutine a test leaked is reported while the
//     servers' own goroutines are not.
//
// Servers log nothing by default. Set DISTSYNC_TEST_LOG to a zap level
// (debug, info, warn, error) to see etcd server and client logs: the embedded
// member and clients log to stderr, cluster members to the test's log.
//
// Every helper fails loudly when a server cannot start; none skips.
package testserver
