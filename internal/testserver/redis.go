package testserver

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// redisStartTimeout bounds how long StartRedis waits for PING to answer.
	redisStartTimeout = 15 * time.Second
	// redisBindAttempts is how often StartRedis picks another port when the
	// one it probed was taken before redis-server could bind it.
	redisBindAttempts = 5
)

// Redis is one redis-server process on a loopback TCP port, with
// persistence off. Its methods are safe for concurrent use. A test package
// usually shares one server and keeps tests apart by key names; fault tests
// can Kill, Restart and Pause it.
type Redis struct {
	mu   sync.Mutex
	addr string
	argv func(port string) []string // redis-server's arguments; nil: a plain server
	cmd  *exec.Cmd
	exit chan struct{} // closed when cmd has been waited for
}

// StartRedis starts redis-server on a free loopback port and returns once
// it answers PING. It needs no *testing.T so that TestMain can call it. A
// missing redis-server binary is an error (never a skip) that says how to
// install it. The caller must call [Redis.Stop].
func StartRedis() (*Redis, error) { return startRedis(nil) }

// startRedis starts redis-server with the arguments argv returns for its
// port (nil: a plain server, persistence off).
func startRedis(argv func(port string) []string) (*Redis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("testserver: redis-server not found (install it: apt-get install -y redis-server): %w", err)
	}
	var last error
	for range redisBindAttempts {
		port, err := redisFreePort()
		if err != nil {
			return nil, err
		}
		r := &Redis{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), argv: argv}
		if last = r.start(); last == nil {
			return r, nil
		}
	}
	return nil, last
}

// redisFreePort returns a loopback port that was free a moment ago.
// redis-server cannot report the port it bound with --port 0, so the
// harness picks one and retries when another process took it first.
func redisFreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testserver: pick a port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start runs redis-server on r.addr and waits for PING. r.mu must be held
// or r unshared.
func (r *Redis) start() error {
	_, port, _ := net.SplitHostPort(r.addr)
	args := []string{"--bind", "127.0.0.1", "--port", port,
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--protected-mode", "no", "--loglevel", "warning", "--logfile", ""}
	if r.argv != nil {
		args = r.argv(port)
	}
	cmd := exec.Command("redis-server", args...)
	var out strings.Builder
	if _, ok := logLevel(); ok {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	} else {
		cmd.Stdout, cmd.Stderr = &out, &out
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testserver: start redis-server: %w", err)
	}
	exit := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exit)
	}()
	r.cmd, r.exit = cmd, exit
	deadline := time.Now().Add(redisStartTimeout)
	for {
		if err := ping(r.addr); err == nil {
			return nil
		}
		select {
		case <-exit:
			r.cmd = nil
			return fmt.Errorf("testserver: redis-server on %s exited while starting: %s", r.addr, strings.TrimSpace(out.String()))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.kill()
			return fmt.Errorf("testserver: redis-server on %s not answering PING after %v", r.addr, redisStartTimeout)
		}
	}
}

// ping sends PING over a new connection and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Addr returns the server's "127.0.0.1:PORT"; it stays the same across
// Restart.
func (r *Redis) Addr() string { return r.addr }

// kill sends SIGKILL (after SIGCONT, in case it is paused) and waits for
// the process. r.mu must be held.
func (r *Redis) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
	_ = r.cmd.Process.Kill()
	<-r.exit
	r.cmd = nil
}

// Kill kills the server (SIGKILL) and waits for it to exit: every
// connection drops and every key is gone. Restart brings it back.
func (r *Redis) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kill()
}

// Restart starts the server again on the same port, empty, after Kill. It
// kills a running server first.
func (r *Redis) Restart() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kill()
	var err error
	// The port was just released; give the kernel a few tries.
	for range redisBindAttempts {
		if err = r.start(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// Pause stops the server process (SIGSTOP): connections stay open but
// nothing is answered, as with a long GC pause or a stopped VM. Resume
// continues it.
func (r *Redis) Pause() error { return r.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (r *Redis) Resume() error { return r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig os.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return errors.New("testserver: redis-server is not running")
	}
	return r.cmd.Process.Signal(sig)
}

// Stop kills the server by its PID and waits for it to exit. It is
// idempotent.
func (r *Redis) Stop() { r.Kill() }
