package integration

import (
	"encoding/binary"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// The distsync command runs in a child process: its ZooKeeper session is
// no *zksync.Session of the test's, so distsynctest.Expire cannot end it.
// zkSniffProxy reads the session's ID and password off the wire instead,
// and ends it from outside as the kit does.

// zkSniffProxy forwards connections to the shared ZooKeeper server and
// records the session ID and password of each connect response.
type zkSniffProxy struct {
	ln  net.Listener
	wg  sync.WaitGroup
	mu  sync.Mutex
	ids []int64          // in the order they were seen
	pws map[int64][]byte // session ID → password
}

func newZKSniffProxy(t *testing.T) *zkSniffProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &zkSniffProxy{ln: ln, pws: map[int64][]byte{}}
	var conns sync.Map // client conn → server conn
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.DialTimeout("tcp", zkServer.Addr(), 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			conns.Store(c, up)
			p.wg.Go(func() {
				_, _ = io.Copy(up, c)
				up.Close()
				c.Close()
			})
			p.wg.Go(func() {
				// The connect response is the first frame the server sends.
				if frame, err := zkReadFrame(io.TeeReader(up, c)); err == nil {
					p.note(frame)
					_, _ = io.Copy(c, up)
				}
				up.Close()
				c.Close()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, v any) bool {
			k.(net.Conn).Close()
			v.(net.Conn).Close()
			return true
		})
		p.wg.Wait()
	})
	return p
}

func (p *zkSniffProxy) Addr() string { return p.ln.Addr().String() }

// note records the session of a connect response: protocol version,
// timeout, session ID, password.
func (p *zkSniffProxy) note(b []byte) {
	if len(b) < 20 {
		return
	}
	sid := int64(binary.BigEndian.Uint64(b[8:16]))
	n := int(binary.BigEndian.Uint32(b[16:20]))
	if sid == 0 || 20+n > len(b) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.ids, sid) {
		p.ids = append(p.ids, sid)
	}
	p.pws[sid] = slices.Clone(b[20 : 20+n])
}

// sessions returns the IDs of the sessions seen through the proxy.
func (p *zkSniffProxy) sessions() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ids)
}

// expire ends session sid on the server from outside, as an expiry would:
// it attaches to the session with its password and closes it.
func (p *zkSniffProxy) expire(t *testing.T, sid int64) {
	t.Helper()
	p.mu.Lock()
	pw, ok := p.pws[sid]
	p.mu.Unlock()
	if !ok {
		t.Fatalf("no password recorded for session 0x%x", sid)
	}
	c, err := net.DialTimeout("tcp", zkServer.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := binary.BigEndian.AppendUint32(nil, 0)                                   // protocol version
	req = binary.BigEndian.AppendUint64(req, 0)                                    // last zxid seen
	req = binary.BigEndian.AppendUint32(req, uint32(zkTestTimeout.Milliseconds())) // timeout
	req = binary.BigEndian.AppendUint64(req, uint64(sid))
	req = binary.BigEndian.AppendUint32(req, uint32(len(pw)))
	req = append(req, pw...)
	if err := zkWriteFrame(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := zkReadFrame(c)
	if err != nil || len(resp) < 16 || int64(binary.BigEndian.Uint64(resp[8:16])) != sid {
		t.Fatalf("attach to session 0x%x: %v (response %x)", sid, err, resp)
	}
	closeReq := binary.BigEndian.AppendUint32(nil, 1)               // xid
	closeReq = binary.BigEndian.AppendUint32(closeReq, ^uint32(10)) // closeSession, -11
	if err := zkWriteFrame(c, closeReq); err != nil {
		t.Fatal(err)
	}
	if _, err := zkReadFrame(c); err != nil {
		t.Fatalf("close session 0x%x: %v", sid, err)
	}
}

func zkWriteFrame(w io.Writer, b []byte) error {
	_, err := w.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
	return err
}

func zkReadFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(n[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}
