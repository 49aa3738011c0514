package zksync

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// go-zookeeper v1.0.4 has a data race (samuel/go-zookeeper#260, still in
// go-zookeeper/zk's main branch). When it reconnects to the same session
// with watches outstanding, its connection goroutine reads the last zxid it
// saw, to re-arm the watches with a setWatches request. Meanwhile its
// receiving goroutine, already started, records the zxid of each response
// on the new connection. Nothing orders the two: the race detector reports
// it whenever a request is answered in between, which a request sent while
// disconnected makes likely.
//
// A Dial Session's connection is a zkConn, which orders them. When a new
// session handshake ends with watches to re-arm (onEvent sees it, on the
// connection goroutine, before the receiving goroutine starts), the zkConn
// holds back every response that would record a zxid until go-zookeeper
// writes its setWatches request. That write comes after the zxid was read,
// so the read happens before any later record of it. The answers to the
// credentials go-zookeeper sends again first are not held: go-zookeeper
// sends nothing else until they arrive, and they record no zxid.

// ZooKeeper's opcodes and its reply header's size, from its wire protocol.
const (
	opSetAuth     = 100
	opSetWatches  = 101
	replyHeader   = 16       // xid int32, zxid int64, err int32
	maxHeldFrame  = 64 << 20 // larger than any response go-zookeeper accepts
	requestHeader = 12       // length int32, xid int32, opcode int32
)

// A zkConn is the network connection go-zookeeper dialed for a Dial
// Session (see above).
type zkConn struct {
	net.Conn
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	held     chan struct{}  // closed when setWatches is written; nil while nothing is held
	auth     map[int32]bool // xids of the credentials sent while holding
	deadline time.Time      // the read deadline go-zookeeper set last

	// frame is the rest of a response read ahead while holding. Only
	// go-zookeeper's reading goroutine touches it.
	frame []byte
}

func newZKConn(c net.Conn) *zkConn {
	return &zkConn{Conn: c, closed: make(chan struct{})}
}

// hold starts holding back responses that record a zxid, until
// go-zookeeper writes setWatches.
func (c *zkConn) hold() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held, c.auth = make(chan struct{}), map[int32]bool{}
	}
}

// Write notes the credentials and the setWatches request go-zookeeper
// writes while responses are held. go-zookeeper writes a request in one
// Write call.
func (c *zkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.held != nil && len(p) >= requestHeader {
		switch int32(binary.BigEndian.Uint32(p[8:12])) {
		case opSetAuth:
			c.auth[int32(binary.BigEndian.Uint32(p[4:8]))] = true
		case opSetWatches:
			close(c.held)
			c.held, c.auth = nil, nil
		}
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// Read passes the connection's bytes on. While responses are held it reads
// a whole response ahead, and waits before handing over one that records a
// zxid.
func (c *zkConn) Read(p []byte) (int, error) {
	if len(c.frame) == 0 {
		c.mu.Lock()
		held := c.held
		c.mu.Unlock()
		if held == nil {
			return c.Conn.Read(p)
		}
		f, err := c.readHeld(held)
		if err != nil {
			return 0, err
		}
		c.frame = f
	}
	n := copy(p, c.frame)
	c.frame = c.frame[n:]
	return n, nil
}

// readHeld reads one response, length included, and returns it once it may
// be handed over: at once if it records no zxid, else when held is closed.
// It fails when the connection is closed or its read deadline passes first.
func (c *zkConn) readHeld(held <-chan struct{}) ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(c.Conn, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > maxHeldFrame {
		return nil, fmt.Errorf("zookeeper response of %d bytes", n)
	}
	f := make([]byte, 4+int(n))
	copy(f, size[:])
	if _, err := io.ReadFull(c.Conn, f[4:]); err != nil {
		return nil, err
	}
	if n < replyHeader {
		return f, nil
	}
	xid := int32(binary.BigEndian.Uint32(f[4:8]))
	zxid := int64(binary.BigEndian.Uint64(f[8:16]))
	c.mu.Lock()
	auth, deadline := c.auth[xid], c.deadline
	c.mu.Unlock()
	// go-zookeeper records the zxid of answers to requests (xid ≥ 0), not
	// of watch events or pings.
	if xid < 0 || zxid <= 0 || auth {
		return f, nil
	}
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-held:
		return f, nil
	case <-c.closed:
		return nil, net.ErrClosed
	case <-expired:
		return nil, os.ErrDeadlineExceeded
	}
}

// SetReadDeadline also bounds how long a held response waits.
func (c *zkConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline also bounds how long a held response waits.
func (c *zkConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// Close closes the connection and ends the wait of a held response.
func (c *zkConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// rearmsWatches reports whether go-zookeeper will send setWatches on the
// connection whose handshake has just ended: whether a watch is
// outstanding. It must run on go-zookeeper's connection goroutine during
// the handshake (onEvent), when no other goroutine changes the watches:
// only the receiving goroutine adds or fires them, and it has ended. The
// watches are in an unexported field, read by reflection; false if it is
// not there (a go-zookeeper other than v1.0.4's layout).
func rearmsWatches(conn *zk.Conn) bool {
	f := reflect.ValueOf(conn).Elem().FieldByName("watchers")
	if !f.IsValid() || f.Kind() != reflect.Map || f.Type().Elem().Kind() != reflect.Slice {
		return false
	}
	for it := f.MapRange(); it.Next(); {
		if it.Value().Len() > 0 {
			return true
		}
	}
	return false
}
