package distsynctest

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync/fallback/zksync"
	"github.com/distsync/distsync/internal/testserver"
	"github.com/go-zookeeper/zk"
)

// ZooKeeperServer is a real ZooKeeper server (ZooKeeperServerMain from
// Debian's zookeeper package) in a JVM child process, on a free loopback
// port, with its data in a temporary directory. It ticks every 100 ms and
// grants session timeouts from 200 ms, so expiry tests are quick. A JVM
// takes a second or more to start: a test package usually shares one,
// started in TestMain with [StartZooKeeper], and keeps tests apart by
// names.
//
// Clients reach the server through a proxy of the kit's, which learns each
// session's password from the server's answer: so [Expire] and
// [ZooKeeperServer.ExpireSession] can end any session dialed to
// [ZooKeeperServer.Addr], also one of another process. Its methods are safe
// for concurrent use.
type ZooKeeperServer struct {
	z     *testserver.ZooKeeper
	front *Proxy
}

// StartZooKeeper starts a ZooKeeper server and returns once it serves. It
// fails, naming the Debian package to install, when java or ZooKeeper's
// jar is missing. The caller must call [ZooKeeperServer.Stop].
func StartZooKeeper() (*ZooKeeperServer, error) {
	z, err := testserver.StartZooKeeper()
	if err != nil {
		return nil, err
	}
	front, err := startProxy(z.Addr(), noteSession)
	if err != nil {
		z.Stop()
		return nil, err
	}
	return &ZooKeeperServer{z: z, front: front}, nil
}

// ZooKeeper starts a ZooKeeper server for t, stopped when t's test ends.
// It fails t when the server cannot start (see [StartZooKeeper]).
func ZooKeeper(t testing.TB) *ZooKeeperServer {
	t.Helper()
	z, err := StartZooKeeper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(z.Stop)
	return z
}

// Addr returns the server's client address, "127.0.0.1:PORT". It stays the
// same across Kill and Restart.
func (z *ZooKeeperServer) Addr() string { return z.front.Addr() }

// Servers returns the server list for zksync.Dial and zk.Connect.
func (z *ZooKeeperServer) Servers() []string { return []string{z.Addr()} }

// Session dials a zksync Session to the server with opts, closed when t's
// test ends. It fails t when the Session cannot open within 20 s.
func (z *ZooKeeperServer) Session(t testing.TB, opts ...zksync.Option) *zksync.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), injectTimeout)
	defer cancel()
	s, err := zksync.Dial(ctx, z.Servers(), opts...)
	if err != nil {
		t.Fatalf("distsynctest: ZooKeeper session: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// ExpireSession ends ZooKeeper session sid from outside, as [Expire] does
// for a Session: for a session that is not a *zksync.Session of the test,
// such as one of a child process. sid is the session's ID, as an
// ephemeral node's Stat.EphemeralOwner shows it. It fails t when the
// session was not dialed to this server or has ended already.
func (z *ZooKeeperServer) ExpireSession(t testing.TB, sid int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), injectTimeout)
	defer cancel()
	if err := expireZooKeeper(ctx, sid); err != nil {
		t.Fatalf("distsynctest: ExpireSession: %v", err)
	}
}

// Kill kills the server (SIGKILL) and waits for it to exit: every
// connection drops and new ones are refused until Restart. Sessions
// survive on disk, as they would a real crash.
func (z *ZooKeeperServer) Kill() { z.z.Kill() }

// Restart starts a killed server again on the same port with its data.
func (z *ZooKeeperServer) Restart() error { return z.z.Restart() }

// Pause stops the server process (SIGSTOP): connections stay open and
// requests go unanswered, as with a blackholed server, until Resume.
func (z *ZooKeeperServer) Pause() error { return z.z.Pause() }

// Resume continues a paused server (SIGCONT).
func (z *ZooKeeperServer) Resume() error { return z.z.Resume() }

// Stop kills the server, closes its proxy and removes its data directory.
// It is idempotent.
func (z *ZooKeeperServer) Stop() {
	z.front.Close()
	z.z.Stop()
}

// zkSessions records, per ZooKeeper session ID, the password and the
// address (a server's proxy) that the proxy read off the connect response.
var zkSessions sync.Map // int64 → zkSessionKey

type zkSessionKey struct {
	addr   string
	passwd []byte
}

// noteSession records the session of a connect response: protocol
// version, timeout, session ID, password.
func noteSession(addr string, b []byte) {
	if len(b) < 20 {
		return
	}
	sid := int64(binary.BigEndian.Uint64(b[8:16]))
	n := int(binary.BigEndian.Uint32(b[16:20]))
	if sid != 0 && 20+n <= len(b) {
		zkSessions.Store(sid, zkSessionKey{addr: addr, passwd: append([]byte(nil), b[20:20+n]...)})
	}
}

// sessionKey returns what a server's proxy learned of session sid.
func sessionKey(sid int64) (zkSessionKey, error) {
	k, ok := zkSessions.Load(sid)
	if !ok {
		return zkSessionKey{}, fmt.Errorf("ZooKeeper session 0x%x was not dialed to a kit server's Addr", sid)
	}
	return k.(zkSessionKey), nil
}

// expireZooKeeper ends session sid on the server from outside, as an
// expiry would: it attaches to the session with its password and closes
// it. The server drops the session's own connection and deletes its
// ephemeral nodes; the client learns on reconnecting that its session has
// expired.
func expireZooKeeper(ctx context.Context, sid int64) error {
	k, err := sessionKey(sid)
	if err != nil {
		return err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", k.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	req := binary.BigEndian.AppendUint32(nil, 0)          // protocol version
	req = binary.BigEndian.AppendUint64(req, 0)           // last zxid seen
	req = binary.BigEndian.AppendUint32(req, 10_000)      // timeout, ms
	req = binary.BigEndian.AppendUint64(req, uint64(sid)) // session
	req = binary.BigEndian.AppendUint32(req, uint32(len(k.passwd)))
	req = append(req, k.passwd...)
	if err := writeFrame(c, req); err != nil {
		return err
	}
	resp, err := readFrame(c)
	if err != nil {
		return fmt.Errorf("attach to ZooKeeper session 0x%x: %w", sid, err)
	}
	if len(resp) < 16 || int64(binary.BigEndian.Uint64(resp[8:16])) != sid {
		return fmt.Errorf("attach to ZooKeeper session 0x%x: it has ended already", sid)
	}
	closeReq := binary.BigEndian.AppendUint32(nil, 1)               // xid
	closeReq = binary.BigEndian.AppendUint32(closeReq, ^uint32(10)) // closeSession, -11
	if err := writeFrame(c, closeReq); err != nil {
		return err
	}
	if _, err := readFrame(c); err != nil {
		return fmt.Errorf("close ZooKeeper session 0x%x: %w", sid, err)
	}
	return nil
}

func writeFrame(w io.Writer, b []byte) error {
	_, err := w.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(n[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}

// withZooKeeper runs f on a connection of its own to the server that
// session sid was dialed to, bounded by ctx: when ctx ends first, the
// connection is closed, which ends f.
func withZooKeeper(ctx context.Context, sid int64, f func(*zk.Conn) error) error {
	k, err := sessionKey(sid)
	if err != nil {
		return err
	}
	c, _, err := zk.Connect([]string{k.addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quietZK{}))
	if err != nil {
		return err
	}
	defer c.Close()
	return zkCall(ctx, func() error { return f(c) })
}

// zkCall runs f, a go-zookeeper call (they take no context), and returns
// its error, or ctx's once ctx ends first. f then goes on until its
// connection answers or closes.
func zkCall(ctx context.Context, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type quietZK struct{}

func (quietZK) Printf(string, ...any) {}
