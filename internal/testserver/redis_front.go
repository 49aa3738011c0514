package testserver

import (
	"bytes"
	"fmt"
	"net"
	"sync"
)

// A RedisFront is a TCP proxy in front of one redis-server: clients,
// replicas and Sentinel reach the server through it, so a test can cut
// what passes. CutReplication drops the replication links of replicas of
// the server (connections that send REPLCONF or PSYNC) and refuses new
// ones, while clients go on: the replicas miss the writes from then on.
// Blackhole stops forwarding bytes both ways on every connection, keeping
// the sockets open, as a network that drops packets does. Its methods are
// safe for concurrent use.
type RedisFront struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	replCut   bool
	blackhole bool
	closed    bool
	conns     map[*frontConn]struct{}
	wg        sync.WaitGroup
}

// frontConn is one proxied connection: the client's side and the server's.
type frontConn struct {
	client, server net.Conn
	repl           bool // a replica's link: it sent REPLCONF or PSYNC
	hole           bool // blackholed on its own (BlackholeOpen)
}

// NewRedisFront starts a proxy to target on a free loopback port. The
// caller must Close it.
func NewRedisFront(target string) (*RedisFront, error) {
	f, err := newRedisFront()
	if err != nil {
		return nil, err
	}
	f.setTarget(target)
	return f, nil
}

// newRedisFront listens, with no target yet: a server that announces the
// front's port can start once the port is known. Connections made before
// setTarget are closed.
func newRedisFront() (*RedisFront, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testserver: redis front: %w", err)
	}
	f := &RedisFront{ln: ln, conns: map[*frontConn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

func (f *RedisFront) setTarget(target string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.target = target
}

// Addr returns the address to dial instead of the server's.
func (f *RedisFront) Addr() string { return f.ln.Addr().String() }

// Port returns the port of Addr.
func (f *RedisFront) Port() string {
	_, p, _ := net.SplitHostPort(f.Addr())
	return p
}

func (f *RedisFront) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		target := f.target
		f.mu.Unlock()
		if target == "" {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			continue
		}
		fc := &frontConn{client: c, server: up}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		f.conns[fc] = struct{}{}
		f.wg.Add(2)
		f.mu.Unlock()
		go f.pipe(fc, up, c, true)
		go f.pipe(fc, c, up, false)
	}
}

// replCommands are the commands only a replica sends, as RESP bulk
// strings (a key or value holding these words does not match).
var replCommands = [][]byte{[]byte("$8\r\nREPLCONF\r\n"), []byte("$5\r\nPSYNC\r\n"), []byte("$4\r\nSYNC\r\n")}

func isReplication(b []byte) bool {
	for _, c := range replCommands {
		if bytes.Contains(b, c) {
			return true
		}
	}
	return false
}

// pipe copies src to dst until either side ends, dropping what it reads
// while blackholed, and ending a replication link while replication is cut.
func (f *RedisFront) pipe(fc *frontConn, dst, src net.Conn, request bool) {
	defer f.wg.Done()
	defer f.drop(fc)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f.mu.Lock()
			if request && !fc.repl {
				fc.repl = isReplication(buf[:n])
			}
			cut := fc.repl && f.replCut
			hole := f.blackhole || fc.hole
			f.mu.Unlock()
			if cut {
				return
			}
			if !hole {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// drop closes both sides of fc and forgets it.
func (f *RedisFront) drop(fc *frontConn) {
	fc.client.Close()
	fc.server.Close()
	f.mu.Lock()
	delete(f.conns, fc)
	f.mu.Unlock()
}

// CutReplication drops the replication links through the front and ends
// every new one as soon as it identifies itself, until HealReplication.
func (f *RedisFront) CutReplication() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replCut = true
	for fc := range f.conns {
		if fc.repl {
			fc.client.Close()
			fc.server.Close()
		}
	}
}

// HealReplication lets replication links through again.
func (f *RedisFront) HealReplication() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.replCut = false
}

// Blackhole stops forwarding on every connection, open or new, in both
// directions, until Unblackhole: what is sent is lost, and nobody is told.
func (f *RedisFront) Blackhole() { f.setBlackhole(true) }

// Unblackhole forwards again; what was sent meanwhile stays lost, so
// connections that were in use are usually broken for good.
func (f *RedisFront) Unblackhole() { f.setBlackhole(false) }

// BlackholeOpen blackholes the connections open now, for good, and
// forwards new ones: as when a firewall or NAT forgets established flows.
// A client must notice on its own that its old connections are dead.
func (f *RedisFront) BlackholeOpen() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fc := range f.conns {
		fc.hole = true
	}
}

func (f *RedisFront) setBlackhole(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blackhole = on
}

// Close stops the front and closes every connection through it. It is
// idempotent.
func (f *RedisFront) Close() {
	f.mu.Lock()
	f.closed = true
	for fc := range f.conns {
		fc.client.Close()
		fc.server.Close()
	}
	f.mu.Unlock()
	f.ln.Close()
	f.wg.Wait()
}
