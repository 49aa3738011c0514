// Command etcd-test-member runs one etcd member for distsync's own tests,
// as a child process: the library module's tests start it through
// internal/testserver, so that the library module does not depend on etcd's
// server. It is the test kit's [distsynctest.StartEtcd]: a member on a free
// loopback port with its data in a temporary directory, ticking every 10ms
// (so etcd grants 1 s leases), skipping fsync.
//
// It prints "ready ENDPOINT" on stdout once it serves, and stops, removing
// its data, when its standard input closes or it gets SIGINT or SIGTERM.
// DISTSYNC_TEST_LOG=LEVEL turns its log on (stderr). The -tick flag sets
// the heartbeat (default 10ms); etcd's default 100ms makes the smallest
// lease TTL 2 s, as on a production cluster.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/distsync/distsync/distsynctest"
)

func main() {
	tick := flag.Duration("tick", 10*time.Millisecond, "heartbeat interval; the election timeout is ten of them")
	flag.Parse()
	s, err := distsynctest.StartEtcd(distsynctest.WithTick(*tick))
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd-test-member:", err)
		os.Exit(1)
	}
	fmt.Printf("ready %s\n", strings.Join(s.Endpoints(), ","))

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop <- syscall.SIGTERM
	}()
	<-stop
	s.Close()
}
