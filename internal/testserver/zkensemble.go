package testserver

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ZooKeeperEnsemble is a ZooKeeper ensemble of QuorumPeerMain servers in
// JVM child processes on loopback, each with a client port, a quorum port
// and an election port chosen at start, and its data in a temporary
// directory. Kill, Restart, Leader and Partition let fault tests take a
// member away, find the leader, and cut one member off from the others.
// Its methods are safe for concurrent use.
//
// # How a partition is made
//
// Every link between two members goes through a TCP proxy of the
// ensemble: in member i's config, another member j's quorum and election
// addresses are those of proxies that forward to j's real ports (only
// member i's own line has its real ports, which it binds). Partition(i)
// closes every proxied connection to and from member i and refuses new
// ones until Heal(i), while client connections are untouched: the member
// stays up and reachable by clients, but cannot reach its peers.
//
// ZooKeeper has one catch: when a member receives an election connection
// from a member with a lower ID, it drops it and dials back at the election
// address the caller announced in its first message (its real port), which
// would bypass the proxies. So an election proxy rewrites that announced
// address to the address of the proxy in the other direction, and the
// dial-back goes through a proxy too. The learner-to-leader quorum
// connection is dialled by the follower at the address in its own config,
// a proxy.
type ZooKeeperEnsemble struct {
	dir     string
	members []*zkMember
	// links[i][j] are the proxies member i dials to reach member j: its
	// quorum port, then its election port.
	links [][][2]*zkLink

	mu sync.Mutex
}

type zkMember struct {
	id       int // 1-based, the server.N number and myid
	cfg      string
	client   string // "127.0.0.1:PORT"
	quorum   int
	election int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	out    *strings.Builder
}

// ZooKeeperEnsembleTick is an ensemble's tickTime. initLimit is 50 ticks
// and syncLimit 10 (a follower that hears nothing from the leader for a
// second drops out), so elections take about a second on a loaded machine.
const ZooKeeperEnsembleTick = 100 * time.Millisecond

// StartZooKeeperEnsemble starts an ensemble of n members (3 or 5 make
// sense) and returns once every member serves and one leads. It fails, never
// skips, when java or the jar is missing. On error nothing is left running.
// The caller must call [ZooKeeperEnsemble.Stop].
func StartZooKeeperEnsemble(n int) (*ZooKeeperEnsemble, error) {
	if n < 1 {
		return nil, fmt.Errorf("testserver: ensemble of %d members", n)
	}
	if _, err := exec.LookPath("java"); err != nil {
		return nil, fmt.Errorf("testserver: java not found (%v): %s", err, zkInstall)
	}
	if _, err := os.Stat(zkJar); err != nil {
		return nil, fmt.Errorf("testserver: ZooKeeper jar missing (%v): %s", err, zkInstall)
	}
	dir, err := os.MkdirTemp("", "distsync-zkens-")
	if err != nil {
		return nil, fmt.Errorf("testserver: ensemble dir: %w", err)
	}
	e := &ZooKeeperEnsemble{dir: dir}
	fail := func(err error) (*ZooKeeperEnsemble, error) {
		e.Stop()
		return nil, err
	}
	for i := range n {
		m := &zkMember{id: i + 1, cfg: filepath.Join(dir, fmt.Sprintf("zoo%d.cfg", i+1))}
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		m.client = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if m.quorum, err = freePort(); err != nil {
			return fail(err)
		}
		if m.election, err = freePort(); err != nil {
			return fail(err)
		}
		e.members = append(e.members, m)
	}
	e.links = make([][][2]*zkLink, n)
	for i := range n {
		e.links[i] = make([][2]*zkLink, n)
		for j := range n {
			if i == j {
				continue
			}
			to := e.members[j]
			q, err := newZKLink(fmt.Sprintf("127.0.0.1:%d", to.quorum))
			if err != nil {
				return fail(err)
			}
			e.links[i][j][0] = q
			el, err := newZKLink(fmt.Sprintf("127.0.0.1:%d", to.election))
			if err != nil {
				return fail(err)
			}
			e.links[i][j][1] = el
		}
	}
	// An election proxy from i to j announces, in i's stead, the proxy
	// from j to i (see "How a partition is made").
	for i := range n {
		for j := range n {
			if i != j {
				e.links[i][j][1].setAnnounce(fmt.Sprintf("127.0.0.1:%d", e.links[j][i][1].port()))
			}
		}
	}
	for i, m := range e.members {
		data := filepath.Join(dir, fmt.Sprintf("data%d", m.id))
		if err := os.MkdirAll(data, 0o700); err != nil {
			return fail(fmt.Errorf("testserver: ensemble data dir: %w", err))
		}
		if err := os.WriteFile(filepath.Join(data, "myid"), []byte(strconv.Itoa(m.id)+"\n"), 0o600); err != nil {
			return fail(fmt.Errorf("testserver: write myid: %w", err))
		}
		_, cport, _ := net.SplitHostPort(m.client)
		lines := []string{
			"tickTime=" + strconv.Itoa(int(ZooKeeperEnsembleTick/time.Millisecond)),
			"initLimit=50",
			"syncLimit=10",
			"minSessionTimeout=" + strconv.Itoa(int(2*ZooKeeperEnsembleTick/time.Millisecond)),
			"maxSessionTimeout=60000",
			"dataDir=" + data,
			"clientPort=" + cport,
			"clientPortAddress=127.0.0.1",
			"admin.enableServer=false",
			"maxClientCnxns=0",
			"4lw.commands.whitelist=srvr,stat,cons,wchs,wchc,mntr,dump",
			"znode.container.checkIntervalMs=1000",
		}
		for j, o := range e.members {
			if i == j {
				lines = append(lines, fmt.Sprintf("server.%d=127.0.0.1:%d:%d", o.id, o.quorum, o.election))
				continue
			}
			l := e.links[i][j]
			lines = append(lines, fmt.Sprintf("server.%d=127.0.0.1:%d:%d", o.id, l[0].port(), l[1].port()))
		}
		if err := os.WriteFile(m.cfg, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return fail(fmt.Errorf("testserver: write ensemble config: %w", err))
		}
	}
	for _, m := range e.members {
		if err := m.launch(); err != nil {
			return fail(err)
		}
	}
	deadline := time.Now().Add(zkStartTimeout)
	for i := range e.members {
		if err := e.waitServing(i, deadline); err != nil {
			return fail(err)
		}
	}
	if _, err := e.WaitLeader(time.Until(deadline)); err != nil {
		return fail(err)
	}
	return e, nil
}

// launch starts the member's JVM without waiting for it to serve.
func (m *zkMember) launch() error {
	cmd := exec.Command("java",
		"-Xms32m", "-Xmx192m", "-XX:+UseSerialGC", "-Xshare:auto",
		"-Dzookeeper.forceSync=no",
		"-Dzookeeper.admin.enableServer=false",
		// An election connection to a peer that is down fails at once on
		// loopback; a cut one must not hold the election up for the
		// default five seconds.
		"-Dzookeeper.cnxTimeout=1000",
		// A member that lost its leader re-sends its vote at intervals
		// that double up to a minute; capped at a second, a new leader
		// is elected in about 300 ms instead of 6 s.
		"-Dzookeeper.fastleader.maxNotificationInterval=1000",
		"-cp", zkJar,
		"org.apache.zookeeper.server.quorum.QuorumPeerMain", m.cfg)
	out := &strings.Builder{}
	cmd.Stdout = &limitedWriter{w: out, n: 8192}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testserver: start java: %w (%s)", err, zkInstall)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	m.mu.Lock()
	m.cmd, m.exited, m.out = cmd, exited, out
	m.mu.Unlock()
	return nil
}

// waitServing waits until member i answers srvr with a mode, or the
// deadline passes.
func (e *ZooKeeperEnsemble) waitServing(i int, deadline time.Time) error {
	m := e.members[i]
	m.mu.Lock()
	exited, out := m.exited, m.out
	m.mu.Unlock()
	for {
		mode, err := zkMode(m.client)
		if err == nil && mode != "" {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("testserver: ZooKeeper member %d exited while starting: %s", m.id, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testserver: ZooKeeper member %d not serving: %v", m.id, err)
		}
	}
}

// zkMode asks a server "srvr" and returns its mode ("leader", "follower",
// "standalone"), or "" when it does not serve.
func zkMode(addr string) (string, error) {
	out, err := FourLetterWord(addr, "srvr")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		if mode, ok := strings.CutPrefix(line, "Mode: "); ok {
			return strings.TrimSpace(mode), nil
		}
	}
	return "", fmt.Errorf("srvr: %q", out)
}

// FourLetterWord sends a four-letter word (srvr, cons, wchc, ...) to the
// ZooKeeper server at addr and returns its answer, within two seconds.
func FourLetterWord(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd)); err != nil {
		return "", err
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil && len(b) == 0 {
		return "", err
	}
	return string(b), nil
}

// Size returns the number of members.
func (e *ZooKeeperEnsemble) Size() int { return len(e.members) }

// Addr returns member i's client address (i from 0). It stays the same
// across Kill and Restart.
func (e *ZooKeeperEnsemble) Addr(i int) string { return e.members[i].client }

// Servers returns every member's client address, for zk.Connect.
func (e *ZooKeeperEnsemble) Servers() []string {
	s := make([]string, len(e.members))
	for i, m := range e.members {
		s[i] = m.client
	}
	return s
}

// Mode returns member i's mode as srvr reports it ("leader", "follower"),
// or "" when it does not serve (down, or without a quorum).
func (e *ZooKeeperEnsemble) Mode(i int) string {
	mode, _ := zkMode(e.members[i].client)
	return mode
}

// Leader returns the index of the member that reports "Mode: leader", or
// -1 when none does.
func (e *ZooKeeperEnsemble) Leader() int {
	for i := range e.members {
		if e.Mode(i) == "leader" {
			return i
		}
	}
	return -1
}

// WaitLeader waits up to d for a leader and for a quorum of members to
// serve under it, and returns the leader's index.
func (e *ZooKeeperEnsemble) WaitLeader(d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for {
		leader, serving := -1, 0
		for i := range e.members {
			switch e.Mode(i) {
			case "leader":
				leader = i
				serving++
			case "follower":
				serving++
			}
		}
		if leader >= 0 && serving > len(e.members)/2 {
			return leader, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("testserver: no ZooKeeper leader with a quorum after %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill kills member i with SIGKILL and waits for it to exit. Killing a
// killed member does nothing.
func (e *ZooKeeperEnsemble) Kill(i int) {
	m := e.members[i]
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart starts a killed member again on the same ports and data, and
// returns once it serves (as leader or follower), or within a minute.
func (e *ZooKeeperEnsemble) Restart(i int) error {
	m := e.members[i]
	m.mu.Lock()
	running := m.cmd != nil
	m.mu.Unlock()
	if running {
		return errors.New("testserver: Restart of a running ZooKeeper member")
	}
	if err := m.launch(); err != nil {
		return err
	}
	return e.waitServing(i, time.Now().Add(zkStartTimeout))
}

// Partition cuts member i off from every other member: the proxies of the
// links between them drop their connections and refuse new ones until
// Heal(i). Clients can still connect to member i, which serves nothing
// once it has lost its quorum.
func (e *ZooKeeperEnsemble) Partition(i int) { e.setCut(i, true) }

// Heal restores member i's links to the others.
func (e *ZooKeeperEnsemble) Heal(i int) { e.setCut(i, false) }

func (e *ZooKeeperEnsemble) setCut(i int, cut bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for j := range e.members {
		if j == i {
			continue
		}
		for _, l := range [][2]*zkLink{e.links[i][j], e.links[j][i]} {
			l[0].setCut(cut)
			l[1].setCut(cut)
		}
	}
}

// Stop kills every member, closes the proxies and removes the data. It is
// idempotent.
func (e *ZooKeeperEnsemble) Stop() {
	for i := range e.members {
		e.Kill(i)
	}
	for _, row := range e.links {
		for _, l := range row {
			if l[0] != nil {
				l[0].close()
			}
			if l[1] != nil {
				l[1].close()
			}
		}
	}
	os.RemoveAll(e.dir)
}

// A zkLink is a TCP proxy from one member to a port of another, which can
// be cut (connections dropped, new ones refused).
type zkLink struct {
	ln     net.Listener
	target string
	// announce, if set, replaces the election address a member announces
	// in the first message of an election connection.
	announce string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newZKLink(target string) (*zkLink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testserver: proxy listen: %w", err)
	}
	l := &zkLink{ln: ln, target: target, conns: map[net.Conn]bool{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

func (l *zkLink) port() int { return l.ln.Addr().(*net.TCPAddr).Port }

func (l *zkLink) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		refuse := l.cut
		l.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", l.target, time.Second)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		if l.cut {
			l.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		l.conns[c], l.conns[up] = true, true
		l.wg.Add(2)
		announce := l.announce
		l.mu.Unlock()
		go func() {
			if announce != "" {
				if err := l.rewriteFirst(up, c, announce); err != nil {
					c.Close() // pipe then closes up and forgets both
				}
			}
			l.pipe(up, c)
		}()
		go l.pipe(c, up)
	}
}

// rewriteFirst copies the first message of an election connection from
// src to dst with the announced address replaced by l.announce. The
// message is a protocol version (-65536 or -65535), the member's ID, and a
// length-prefixed address list ("host:port", '|'-separated); with an older
// protocol the first long is the ID and no address follows.
func (l *zkLink) rewriteFirst(dst, src net.Conn, announce string) error {
	var head [16]byte
	if _, err := io.ReadFull(src, head[:]); err != nil {
		return err
	}
	version := int64(binary.BigEndian.Uint64(head[:8]))
	if version != -65536 && version != -65535 {
		_, err := dst.Write(head[:])
		return err
	}
	var n [4]byte
	if _, err := io.ReadFull(src, n[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > 4096 {
		return fmt.Errorf("testserver: election address of %d bytes", size)
	}
	if _, err := io.CopyN(io.Discard, src, int64(size)); err != nil {
		return err
	}
	msg := append(head[:], binary.BigEndian.AppendUint32(nil, uint32(len(announce)))...)
	msg = append(msg, announce...)
	_, err := dst.Write(msg)
	return err
}

// pipe copies src to dst; either side ending ends both.
func (l *zkLink) pipe(dst, src net.Conn) {
	defer l.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	l.mu.Lock()
	delete(l.conns, dst)
	delete(l.conns, src)
	l.mu.Unlock()
}

func (l *zkLink) setAnnounce(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.announce = addr
}

func (l *zkLink) setCut(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = cut
	if cut {
		for c := range l.conns {
			c.Close()
		}
	}
}

func (l *zkLink) close() {
	l.ln.Close()
	l.setCut(true)
	l.wg.Wait()
}
