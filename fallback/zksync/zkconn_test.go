package zksync_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/distsync/distsync/fallback/zksync"
	"github.com/go-zookeeper/zk"
)

// unguardedEnv makes TestReconnectRearmsWatches run its unguarded control:
// the same reconnection on a plain go-zookeeper connection.
const unguardedEnv = "ZKSYNC_UNGUARDED_REARM"

// heldDialer dials the test server and can hold a dial back, so that a
// test can queue requests while go-zookeeper waits to reconnect.
type heldDialer struct {
	mu      sync.Mutex
	last    net.Conn
	hold    chan struct{} // not nil: dials wait until it is closed
	dialing chan struct{} // closed when a held dial has begun
}

func (d *heldDialer) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	d.mu.Lock()
	hold, dialing := d.hold, d.dialing
	d.mu.Unlock()
	if hold != nil {
		close(dialing)
		select {
		case <-hold:
		case <-time.After(10 * time.Second):
			return nil, errors.New("held dial not released")
		}
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.last = c
	d.mu.Unlock()
	return c, nil
}

// cut closes the connection and holds the next dial back; it returns once
// go-zookeeper has begun that dial, and release lets it go on.
func (d *heldDialer) cut(t *testing.T) (release func()) {
	t.Helper()
	hold, dialing := make(chan struct{}), make(chan struct{})
	d.mu.Lock()
	d.hold, d.dialing = hold, dialing
	last := d.last
	d.mu.Unlock()
	last.Close()
	select {
	case <-dialing:
	case <-time.After(10 * time.Second):
		t.Fatal("go-zookeeper did not dial again within 10s")
	}
	return func() {
		d.mu.Lock()
		d.hold = nil
		d.mu.Unlock()
		close(hold)
	}
}

// rearmDelay is how long stallRearm keeps go-zookeeper from re-arming its
// watches.
const rearmDelay = 50 * time.Millisecond

// stallRearm takes conn's lock on its watches (an unexported sync.Mutex,
// reached by reflection), so that go-zookeeper's connection goroutine,
// reconnecting, waits before it re-arms them: what a loaded machine does
// now and then, every time. The returned func gives the lock back.
func stallRearm(t *testing.T, conn *zk.Conn) (unstall func()) {
	t.Helper()
	f := reflect.ValueOf(conn).Elem().FieldByName("watchersLock")
	if !f.IsValid() || f.Type() != reflect.TypeFor[sync.Mutex]() {
		t.Fatal("go-zookeeper's Conn has no watchersLock: not v1.0.4's layout")
	}
	mu := (*sync.Mutex)(unsafe.Pointer(f.UnsafeAddr()))
	mu.Lock()
	return mu.Unlock
}

// queued returns how many requests wait in conn's send queue (an
// unexported channel, read by reflection).
func queued(t *testing.T, conn *zk.Conn) int {
	t.Helper()
	f := reflect.ValueOf(conn).Elem().FieldByName("sendChan")
	if !f.IsValid() || f.Kind() != reflect.Chan {
		t.Fatal("go-zookeeper's Conn has no sendChan: not v1.0.4's layout")
	}
	return f.Len()
}

// reconnectWithWatches makes go-zookeeper reconnect to conn's session with
// watches outstanding and requests queued while it was disconnected: the
// requests are answered on the new connection while go-zookeeper waits to
// re-arm the watches. It checks that the requests succeed, the session lived on
// and a re-armed watch fires.
func reconnectWithWatches(t *testing.T, conn *zk.Conn, d *heldDialer) {
	t.Helper()
	base := fmt.Sprintf("/%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
	var watches []<-chan zk.Event
	for i := range 16 {
		_, _, ch, err := conn.ExistsW(fmt.Sprintf("%s-%d", base, i))
		if err != nil {
			t.Fatal(err)
		}
		watches = append(watches, ch)
	}
	sid := conn.SessionID()
	release := d.cut(t)
	const requests = 8
	errs := make(chan error, requests)
	for range requests {
		go func() {
			_, _, err := conn.Get("/")
			errs <- err
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); queued(t, conn) < requests; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("%d of %d requests queued after 10s", queued(t, conn), requests)
		}
	}
	// The responses come while go-zookeeper waits to re-arm the watches.
	// The test must not learn of them before it lets go-zookeeper go on:
	// that would order them before the re-arming.
	unstall := stallRearm(t, conn)
	release()
	time.Sleep(rearmDelay)
	unstall()
	for range requests {
		if err := <-errs; err != nil {
			t.Errorf("request queued while disconnected: %v", err)
		}
	}
	if got := conn.SessionID(); got != sid {
		t.Fatalf("session %#x after the reconnection, want %#x", got, sid)
	}
	if _, err := conn.Create(base+"-0", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-watches[0]:
		if ev.Type != zk.EventNodeCreated {
			t.Errorf("re-armed watch brought %v, want EventNodeCreated", ev)
		}
	case <-time.After(10 * time.Second):
		t.Error("re-armed watch did not fire within 10s")
	}
	if err := conn.Delete(base+"-0", -1); err != nil {
		t.Fatal(err)
	}
}

// TestReconnectRearmsWatches: a Dial Session's connection reconnects to
// its session with watches outstanding and requests queued, under the race
// detector, without go-zookeeper's race on its last zxid
// (samuel/go-zookeeper#260). The same reconnection on a plain
// go-zookeeper connection, run in a child process, is shown to race; and a
// Session with credentials, which go-zookeeper sends again before anything
// else, reconnects as well.
func TestReconnectRearmsWatches(t *testing.T) {
	if os.Getenv(unguardedEnv) != "" {
		d := &heldDialer{}
		c, events, err := zk.Connect(server.Servers(), 4*time.Second, zk.WithDialer(d.dial), zk.WithLogInfo(false), zk.WithLogger(quiet{}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			for range events {
			}
		}()
		reconnectWithWatches(t, c, d)
		return
	}
	for _, tc := range []struct {
		name string
		opts []zksync.Option
	}{
		{"plain", nil},
		{"credentials", []zksync.Option{zksync.WithAuth("digest", []byte("rearm:secret"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &heldDialer{}
			s := session(t, append(tc.opts, zksync.WithDialer(d.dial))...)
			reconnectWithWatches(t, s.Conn(), d)
			// The Session follows its connection again.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			m, err := s.Mutex(t.Name())
			if err != nil {
				t.Fatal(err)
			}
			l, err := m.Lock(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	if !raceEnabled {
		t.Log("built without -race: the unguarded control needs the race detector")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReconnectRearmsWatches$", "-test.count=1")
	cmd.Env = append(os.Environ(), unguardedEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "WARNING: DATA RACE") || !strings.Contains(string(out), "sendSetWatches") {
		t.Fatalf("the unguarded control did not race in go-zookeeper's sendSetWatches (%v):\n%s", err, out)
	}
}
