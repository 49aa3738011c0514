package distsynctest

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to a target address and lets a test take
// the network between a client and its server away. Cut drops every open
// connection and refuses new ones, as a crashed server or a closed port
// would. Blackhole keeps every connection open but passes no byte either
// way, as a network that drops packets silently would: a client then
// learns only from its own timeouts. Heal undoes both. Dial a client to
// [Proxy.Addr] instead of the server to put it under the test's control.
// A Proxy is safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	muted bool          // replies (server to client) are dropped
	holes chan struct{} // non-nil while blackholed; closed by Heal or Cut
	conns map[net.Conn]bool
	wg    sync.WaitGroup

	// greeted, when set, is called with the proxy's address and the
	// first frame (a 4-byte big-endian length, then that many bytes) the
	// server sends on each connection: ZooKeeperServer reads session
	// passwords off connect responses with it.
	greeted func(addr string, frame []byte)
}

// StartProxy starts a proxy to target on a free loopback port. The caller
// must call [Proxy.Close].
func StartProxy(target string) (*Proxy, error) { return startProxy(target, nil) }

// startProxy is StartProxy with the greeted hook (nil for none).
func startProxy(target string, greeted func(addr string, frame []byte)) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]bool{}, greeted: greeted}
	p.wg.Go(p.accept)
	return p, nil
}

// NewProxy starts a proxy to target for t, closed when t's test ends. It
// fails t when no port is free.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := StartProxy(target)
	if err != nil {
		t.Fatalf("distsynctest: proxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// Addr returns the address clients dial, "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.isCut() {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, dialTimeout)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		pipe := func(dst, src net.Conn, reply bool) {
			_, _ = io.Copy(dst, p.reader(src, reply))
			// Either side ending ends both.
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		p.wg.Go(func() { pipe(up, c, false) })
		p.wg.Go(func() {
			if p.greeted != nil {
				frame, err := readGreeting(io.TeeReader(up, c))
				if err != nil {
					up.Close()
					c.Close()
					return
				}
				if frame != nil {
					p.greeted(p.Addr(), frame)
				}
			}
			pipe(c, up, true)
		})
	}
}

// maxGreeting bounds the first frame readGreeting reads: a ZooKeeper
// connect response is about 40 bytes.
const maxGreeting = 4096

// readGreeting reads the server's first frame off r. An answer that is no
// frame, such as a four-letter-word command's text, gives nil, with the
// bytes read passed on all the same.
func readGreeting(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxGreeting {
		return nil, nil
	}
	b := make([]byte, size)
	_, err := io.ReadFull(r, b)
	return b, err
}

func (p *Proxy) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// reader reads src; replies read while the proxy is muted are dropped, and
// nothing read while it is blackholed passes until it is healed.
func (p *Proxy) reader(src net.Conn, reply bool) io.Reader {
	return readerFunc(func(b []byte) (int, error) {
		for {
			p.holdWhileBlackholed()
			n, err := src.Read(b)
			p.holdWhileBlackholed()
			p.mu.Lock()
			muted := p.muted && reply
			p.mu.Unlock()
			if !muted || err != nil {
				return n, err
			}
		}
	})
}

// holdWhileBlackholed blocks while the proxy is blackholed: the bytes wait
// in the proxy (and then in the kernel's buffers), as they would in a
// network that drops them and retransmits later.
func (p *Proxy) holdWhileBlackholed() {
	p.mu.Lock()
	h := p.holes
	p.mu.Unlock()
	if h != nil {
		<-h
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// Blackhole stops every byte, both ways, on open and new connections, and
// keeps the connections open, until Heal (or Cut, which also closes them).
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holes == nil {
		p.holes = make(chan struct{})
	}
}

// openHoles ends a blackhole; p.mu held.
func (p *Proxy) openHoles() {
	if p.holes != nil {
		close(p.holes)
		p.holes = nil
	}
}

// Mute drops every reply from the server from now on, while requests
// still reach it: the outcome of a request becomes unknown to its client.
// Unmute ends it.
func (p *Proxy) Mute() { p.setMuted(true) }

// Unmute passes replies again.
func (p *Proxy) Unmute() { p.setMuted(false) }

func (p *Proxy) setMuted(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.muted = on
}

// Cut drops every connection and refuses new ones until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.openHoles()
	p.dropLocked()
}

// Reset closes every open connection; new ones are accepted (and pass
// nothing while the proxy is blackholed). Clients notice at once and
// redial.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropLocked()
}

func (p *Proxy) dropLocked() {
	for c := range p.conns {
		c.Close()
	}
}

// Heal accepts connections again and ends a blackhole (not a Mute).
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	p.openHoles()
}

// Close stops the proxy: it closes its listener and every connection, and
// returns once its goroutines have ended. It is idempotent.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
