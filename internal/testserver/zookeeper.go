package testserver

import (
	"bufio"
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
	"syscall"
	"testing"
	"time"
)

const (
	// zkJar is the server jar of Debian's zookeeper package. Its manifest's
	// Class-Path names the jars it needs (slf4j-api, netty, jute, ...), so
	// it is the whole class path. slf4j has no binding installed, so the
	// server logs nothing.
	zkJar = "/usr/share/java/zookeeper.jar"

	// zkInstall is what to run when the server is missing.
	zkInstall = "apt-get install -y zookeeper (or scripts/ensure-servers.sh)"

	// zkStartTimeout bounds how long a JVM start may take on a loaded
	// two-core machine.
	zkStartTimeout = 60 * time.Second

	// ZooKeeperTick is the server's tickTime. Sessions are checked for
	// expiry every tick, and the shortest session timeout the server grants
	// is ZooKeeperMinSession, so that expiry tests are fast.
	ZooKeeperTick = 100 * time.Millisecond

	// ZooKeeperMinSession is the server's minSessionTimeout.
	ZooKeeperMinSession = 2 * ZooKeeperTick
)

// ZooKeeper is one ZooKeeper server (ZooKeeperServerMain, standalone) in a
// JVM child process, serving on a loopback port with its data in a
// temporary directory. A test package shares one through [RunWithZooKeeper]
// (a JVM takes seconds to start) and keeps tests apart by names. Kill,
// Restart, Pause and Resume let fault tests take it away; its methods are
// safe for concurrent use.
type ZooKeeper struct {
	dir  string
	cfg  string
	addr string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	paused bool
}

// StartZooKeeper starts a ZooKeeper server and returns once it serves
// requests. It fails, never skips, when java or the jar is missing, with the
// command that installs them. On error nothing is left running. The caller
// must call [ZooKeeper.Stop].
func StartZooKeeper() (*ZooKeeper, error) {
	if _, err := exec.LookPath("java"); err != nil {
		return nil, fmt.Errorf("testserver: java not found (%v): %s", err, zkInstall)
	}
	if _, err := os.Stat(zkJar); err != nil {
		return nil, fmt.Errorf("testserver: ZooKeeper jar missing (%v): %s", err, zkInstall)
	}
	dir, err := os.MkdirTemp("", "distsync-zk-")
	if err != nil {
		return nil, fmt.Errorf("testserver: zookeeper data dir: %w", err)
	}
	// The port is chosen by binding port 0 and releasing it: the JVM binds
	// it a second later, so another process could take it in between;
	// StartZooKeeper then fails rather than talk to a stranger.
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	z := &ZooKeeper{dir: dir, cfg: filepath.Join(dir, "zoo.cfg"), addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	cfg := strings.Join([]string{
		"tickTime=" + strconv.Itoa(int(ZooKeeperTick/time.Millisecond)),
		"minSessionTimeout=" + strconv.Itoa(int(ZooKeeperMinSession/time.Millisecond)),
		"maxSessionTimeout=60000",
		"dataDir=" + filepath.Join(dir, "data"),
		"clientPort=" + strconv.Itoa(port),
		"clientPortAddress=127.0.0.1",
		"admin.enableServer=false",
		// The benchmarks queue 512 waiters, each with a session (a
		// connection) of its own; the default allows 60 per address.
		"maxClientCnxns=0",
		"4lw.commands.whitelist=srvr,stat,cons,wchs,wchc,mntr,dump",
		// Container nodes are reaped every checkIntervalMs; make it short
		// so tests see a name's empty parent node go away.
		"znode.container.checkIntervalMs=1000",
		"",
	}, "\n")
	if err := os.WriteFile(z.cfg, []byte(cfg), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testserver: write zoo.cfg: %w", err)
	}
	if err := z.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return z, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testserver: pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start launches the JVM and waits until the server serves; on error the
// process is killed.
func (z *ZooKeeper) start() error {
	cmd := exec.Command("java",
		"-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-Xshare:auto",
		"-Dzookeeper.forceSync=no", // the data directory is thrown away
		"-Dzookeeper.admin.enableServer=false",
		"-cp", zkJar,
		"org.apache.zookeeper.server.ZooKeeperServerMain", z.cfg)
	var out strings.Builder
	cmd.Stdout = &limitedWriter{w: &out, n: 8192}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testserver: start java: %w (%s)", err, zkInstall)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	z.mu.Lock()
	z.cmd, z.exited, z.paused = cmd, exited, false
	z.mu.Unlock()

	deadline := time.Now().Add(zkStartTimeout)
	for {
		ok, err := z.serving()
		if ok {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("testserver: ZooKeeper exited while starting (%v): %s", cmd.ProcessState, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			z.kill()
			return fmt.Errorf("testserver: ZooKeeper not serving after %v: %v: %s", zkStartTimeout, err, out.String())
		}
	}
}

// limitedWriter keeps the first n bytes of the server's output for error
// messages.
type limitedWriter struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		_, _ = l.w.Write(p[:k])
	}
	return len(p), nil
}

// serving asks the server "srvr": until it is ready it answers that it is
// not currently serving requests.
func (z *ZooKeeper) serving() (bool, error) {
	c, err := net.DialTimeout("tcp", z.addr, time.Second)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false, err
	}
	b, err := io.ReadAll(bufio.NewReader(c))
	if err != nil && len(b) == 0 {
		return false, err
	}
	if strings.Contains(string(b), "Zookeeper version") {
		return true, nil
	}
	return false, fmt.Errorf("srvr: %q", b)
}

// Addr returns the client address ("127.0.0.1:PORT"). It stays the same
// across Kill and Restart.
func (z *ZooKeeper) Addr() string { return z.addr }

// Servers returns the server list for zk.Connect.
func (z *ZooKeeper) Servers() []string { return []string{z.addr} }

// Kill kills the server with SIGKILL and waits for it to exit: clients see
// their connections drop, and their sessions live on (the server keeps them
// in its data directory) until a restart expires them. Killing a killed
// server does nothing.
func (z *ZooKeeper) Kill() {
	z.kill()
}

func (z *ZooKeeper) kill() {
	z.mu.Lock()
	cmd, exited, paused := z.cmd, z.exited, z.paused
	z.cmd = nil
	z.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	<-exited
}

// Restart starts a killed server again on the same port and data
// directory, so that sessions whose timeout has not passed survive, and
// returns once it serves.
func (z *ZooKeeper) Restart() error {
	z.mu.Lock()
	running := z.cmd != nil
	z.mu.Unlock()
	if running {
		return errors.New("testserver: Restart of a running ZooKeeper")
	}
	return z.start()
}

// Pause stops the server's process (SIGSTOP): connections stay open and
// nothing answers, as with a long GC pause or a hung machine.
func (z *ZooKeeper) Pause() error { return z.signal(syscall.SIGSTOP, true) }

// Resume continues a paused server (SIGCONT).
func (z *ZooKeeper) Resume() error { return z.signal(syscall.SIGCONT, false) }

func (z *ZooKeeper) signal(sig syscall.Signal, paused bool) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.cmd == nil {
		return errors.New("testserver: ZooKeeper is not running")
	}
	if err := z.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("testserver: signal ZooKeeper: %w", err)
	}
	z.paused = paused
	return nil
}

// Stop kills the server, waits for it to exit and removes its data
// directory. It is idempotent.
func (z *ZooKeeper) Stop() {
	z.kill()
	os.RemoveAll(z.dir)
}

// RunWithZooKeeper starts one ZooKeeper server for the whole test package,
// hands it to use before any test runs, and stops it after the last test,
// before the goroutine-leak check. It fails the package if the server
// cannot start. Call it from TestMain; it does not return.
func RunWithZooKeeper(m *testing.M, use func(z *ZooKeeper)) {
	Run(m, func() (func(), error) {
		z, err := StartZooKeeper()
		if err != nil {
			return nil, err
		}
		use(z)
		return z.Stop, nil
	})
}
