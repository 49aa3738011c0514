package testserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	// dialTimeout is the DialTimeout of every client this package hands
	// out.
	dialTimeout = 5 * time.Second
	// buildTimeout bounds building the member binary: the first build
	// compiles etcd's server.
	buildTimeout = 10 * time.Minute
	// readyTimeout bounds the member's start once built.
	readyTimeout = 60 * time.Second
)

// Etcd is one etcd member running as a child process (the command
// distsynctest/internal/cmd/etcd-test-member, built on first use), on a free
// loopback port with its data in a temporary directory. It runs as a
// process so that the library module, whose tests use it, does not depend
// on etcd's server. Its methods other than Stop are safe for concurrent
// use; a test package usually shares one member through [RunWithEtcd] and
// keeps tests apart by giving each its own key names.
//
// The member ticks every 10ms with a 100ms election timeout, as etcd's own
// integration framework does, so the smallest lease TTL etcd grants is one
// second rather than two and sessions expire quickly in tests. Writes skip
// fsync. The member is killed if the test process dies.
type Etcd struct {
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	dir       string
	endpoints []string
	exited    chan struct{}
}

// StartEtcd builds and starts a member and returns once it serves
// requests. It needs no *testing.T so that TestMain can call it. On error
// nothing is left running. The caller must call [Etcd.Stop].
func StartEtcd() (*Etcd, error) { return startEtcd() }

// StartEtcdDefaultTicks starts a member with etcd's default heartbeat
// (100ms, election timeout 1s), on which the smallest lease TTL is 2 s as
// on a production cluster; otherwise as StartEtcd.
func StartEtcdDefaultTicks() (*Etcd, error) { return startEtcd("-tick", "100ms") }

func startEtcd(args ...string) (*Etcd, error) {
	dir, err := os.MkdirTemp("", "distsync-etcd-member-")
	if err != nil {
		return nil, fmt.Errorf("testserver: %w", err)
	}
	bin := filepath.Join(dir, "etcd-test-member")
	if err := buildMember(bin); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	// The member dies with the test process, whatever kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testserver: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testserver: %w", err)
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testserver: start etcd member: %w", err)
	}
	e := &Etcd{cmd: cmd, stdin: stdin, dir: dir, exited: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if ep, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- ep
			}
		}
		close(ready)
	}()
	go func() {
		_ = cmd.Wait()
		close(e.exited)
	}()
	select {
	case ep, ok := <-ready:
		if !ok {
			e.Stop()
			return nil, errors.New("testserver: etcd member exited before it was ready (see its stderr)")
		}
		e.endpoints = strings.Split(ep, ",")
	case <-time.After(readyTimeout):
		e.Stop()
		return nil, fmt.Errorf("testserver: etcd member not ready after %v", readyTimeout)
	}
	return e, nil
}

// buildMember builds the member command to bin, from this repository's
// workspace (go.work makes the distsynctest module visible).
func buildMember(bin string) error {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return errors.New("testserver: cannot locate the repository")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./distsynctest/internal/cmd/etcd-test-member")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testserver: build the etcd member (go build ./distsynctest/internal/cmd/etcd-test-member in %s): %v\n%s", root, err, out)
	}
	return nil
}

// Endpoints returns the member's client endpoints ("127.0.0.1:PORT"), ready
// for clientv3.Config.Endpoints. The caller may modify the returned slice.
func (e *Etcd) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Stop stops the member (closing its standard input, then killing it after
// 15 s), waits for it to exit and removes its directory. Clients should be
// closed first. Stop is idempotent.
func (e *Etcd) Stop() {
	if e.cmd == nil {
		return
	}
	_ = e.stdin.Close()
	select {
	case <-e.exited:
	case <-time.After(15 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.exited
	}
	e.cmd = nil
	os.RemoveAll(e.dir)
}

// NewClient returns a new client of the member with a 5s dial timeout and
// quiet logging. The caller must close it. Tests should prefer [Etcd.Client].
func (e *Etcd) NewClient() (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   e.Endpoints(),
		DialTimeout: dialTimeout,
		Logger:      stderrLogger(),
	})
	if err != nil {
		return nil, fmt.Errorf("testserver: etcd client: %w", err)
	}
	return cli, nil
}

// Client returns a new client of the member, closed when tb's test and its
// subtests finish. Each call makes a separate client with its own connection,
// so a test can have several independent sessions. It fails tb if the client
// cannot be created.
func (e *Etcd) Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	cli, err := e.NewClient()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

// Compact compacts the member's keyspace up to its current revision and waits
// until the compaction is applied, so that afterwards every watch or read at
// an older revision fails with rpctypes.ErrCompacted. Compacting again with no
// write in between is not an error.
func (e *Etcd) Compact(ctx context.Context) error {
	cli, err := e.NewClient()
	if err != nil {
		return err
	}
	defer cli.Close()

	// Any read carries the store's current revision in its header.
	resp, err := cli.Get(ctx, "distsync-testserver-compact", clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("testserver: read revision: %w", err)
	}
	_, err = cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical())
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("testserver: compact to %d: %w", resp.Header.Revision, err)
	}
	return nil
}

// RootPassword is the password of the root user that EnableAuth creates.
const RootPassword = "root-password"

// EnableAuth turns authentication on: it creates the user root (password
// RootPassword) and a user with the given password whose only role may
// read and write the keys under prefix, then enables auth. Do it on a
// member of the test's own: every other client of the member must then
// authenticate.
func (e *Etcd) EnableAuth(ctx context.Context, user, password, prefix string) error {
	c, err := e.NewClient()
	if err != nil {
		return err
	}
	defer c.Close()
	role := user + "-role"
	for _, step := range []func() error{
		func() error { _, err := c.UserAdd(ctx, "root", RootPassword); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.RoleAdd(ctx, role); return err },
		func() error {
			_, err := c.RoleGrantPermission(ctx, role, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := c.UserAdd(ctx, user, password); return err },
		func() error { _, err := c.UserGrantRole(ctx, user, role); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			return fmt.Errorf("testserver: enable etcd auth: %w", err)
		}
	}
	return nil
}
