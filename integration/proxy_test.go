package integration

import (
	"io"
	"net"
	"sync"
	"testing"
)

// tcpProxy forwards TCP connections to a target address, and can cut them:
// Cut drops every open connection and refuses new ones until Heal;
// Blackhole keeps every connection open but passes no byte either way (as
// a network that drops packets silently) until Heal. It puts one client's
// connection to a single-member server under the test's control, where the
// 3-member cluster's bridges would need a cluster.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	muted bool          // replies (server to client) are dropped
	holes chan struct{} // non-nil while blackholed; closed by Heal or Cut
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// newTCPProxy starts a proxy to target on a free loopback port and stops
// it when t's test ends.
func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

// Addr returns the address clients dial.
func (p *tcpProxy) Addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		up, err := net.Dial("tcp", p.target)
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
		p.wg.Go(func() { pipe(c, up, true) })
	}
}

// reader reads src; replies read while the proxy is muted are dropped, and
// nothing read while it is blackholed passes until it is healed.
func (p *tcpProxy) reader(src net.Conn, reply bool) io.Reader {
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
func (p *tcpProxy) holdWhileBlackholed() {
	p.mu.Lock()
	h := p.holes
	p.mu.Unlock()
	if h != nil {
		<-h
	}
}

// Blackhole stops every byte, both ways, on open and new connections, and
// keeps the connections open, until Heal (or Cut, which also closes them).
func (p *tcpProxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holes == nil {
		p.holes = make(chan struct{})
	}
}

// openHoles ends a blackhole; p.mu held.
func (p *tcpProxy) openHoles() {
	if p.holes != nil {
		close(p.holes)
		p.holes = nil
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// Mute drops every reply from the server from now on, while requests still
// reach it: a request's outcome becomes unknown to the client. Unmute
// ends it.
func (p *tcpProxy) Mute() { p.setMuted(true) }

// Unmute passes replies again.
func (p *tcpProxy) Unmute() { p.setMuted(false) }

func (p *tcpProxy) setMuted(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.muted = on
}

// Cut drops every connection and refuses new ones until Heal.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.openHoles()
	for c := range p.conns {
		c.Close()
	}
}

// Heal accepts connections again and ends a blackhole.
func (p *tcpProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	p.openHoles()
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
