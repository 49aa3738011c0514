package integration

import (
	"io"
	"net"
	"sync"
	"testing"
)

// tcpProxy forwards TCP connections to a target address, and can cut them:
// Cut drops every open connection and refuses new ones until Heal. It puts
// one client's connection to a single-member server under the test's
// control, where the 3-member cluster's bridges would need a cluster.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	muted bool // replies (server to client) are dropped
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

// reader reads src; replies read while the proxy is muted are dropped.
func (p *tcpProxy) reader(src net.Conn, reply bool) io.Reader {
	if !reply {
		return src
	}
	return readerFunc(func(b []byte) (int, error) {
		for {
			n, err := src.Read(b)
			p.mu.Lock()
			muted := p.muted
			p.mu.Unlock()
			if !muted || err != nil {
				return n, err
			}
		}
	})
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
	for c := range p.conns {
		c.Close()
	}
}

// Heal accepts connections again.
func (p *tcpProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
