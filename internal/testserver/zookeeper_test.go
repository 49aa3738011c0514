package testserver_test

import (
	"net"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/distsync/distsync/internal/testserver"
)

// TestZooKeeperFaults starts a server of its own, writes through a client,
// and takes the server through Pause/Resume and Kill/Restart: the client's
// session and its ephemeral node must survive both (the restart comes well
// within the session timeout).
func TestZooKeeperFaults(t *testing.T) {
	z, err := testserver.StartZooKeeper()
	if err != nil {
		t.Fatal(err)
	}
	defer z.Stop()
	if _, _, err := net.SplitHostPort(z.Addr()); err != nil {
		t.Fatalf("Addr %q: %v", z.Addr(), err)
	}
	c, _, err := zk.Connect(z.Servers(), 20*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	path, err := c.Create("/"+t.Name(), []byte("v"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	sid := c.SessionID()

	if err := z.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := z.Resume(); err != nil {
		t.Fatal(err)
	}
	z.Kill()
	z.Kill() // idempotent
	if err := z.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, _, err := c.Get(path)
		if err == nil {
			if string(data) != "v" {
				t.Fatalf("Get after restart: got %q, want %q", data, "v")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.SessionID(); got != sid {
		t.Fatalf("session %x replaced by %x across a short restart", sid, got)
	}
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}
