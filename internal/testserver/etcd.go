package testserver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

const (
	// etcdStartTimeout bounds how long StartEtcd waits for the member to elect
	// itself. A single member needs a few ticks; the rest is margin for -race
	// on a loaded two-core machine.
	etcdStartTimeout = 30 * time.Second

	// dialTimeout is the DialTimeout of every client this package hands out.
	dialTimeout = 5 * time.Second
)

// Etcd is one embedded etcd member serving plain gRPC on a loopback TCP port,
// with its data in a temporary directory. Its methods other than Stop are
// safe for concurrent use; a test package usually shares one member through
// [RunWithEtcd] and keeps tests apart by giving each its own key names.
//
// The member ticks every 10ms with a 100ms election timeout, as etcd's own
// integration framework does, so the smallest lease TTL etcd grants is one
// second rather than two and sessions expire quickly in tests. Writes skip
// fsync: the data directory is thrown away.
type Etcd struct {
	srv       *embed.Etcd
	dir       string
	endpoints []string
}

// StartEtcd starts an embedded etcd member and returns once it has elected
// itself leader and serves requests. It needs no *testing.T so that TestMain
// can call it. On error nothing is left running and the data directory is
// removed. The caller must call [Etcd.Stop].
func StartEtcd() (*Etcd, error) {
	dir, err := os.MkdirTemp("", "distsync-etcd-")
	if err != nil {
		return nil, fmt.Errorf("testserver: etcd data dir: %w", err)
	}

	cfg := embed.NewConfig()
	cfg.Name = "distsync"
	cfg.Dir = dir
	// Port 0 lets the kernel pick free ports when the listeners are bound, so
	// there is no window in which another process can take a port we probed.
	// The advertised URLs keep port 0: a single member never dials its own
	// peer URL, and clients use the bound address read back below.
	local := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenPeerUrls = []url.URL{local}
	cfg.AdvertisePeerUrls = []url.URL{local}
	cfg.ListenClientUrls = []url.URL{local}
	cfg.AdvertiseClientUrls = []url.URL{local}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.UnsafeNoFsync = true
	// The HTTP gateway would add a loopback gRPC client of the server's own;
	// nothing here speaks JSON to etcd.
	cfg.EnableGRPCGateway = false
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(stderrLogger())

	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testserver: start etcd: %w", err)
	}
	e := &Etcd{srv: srv, dir: dir}

	select {
	case <-srv.Server.ReadyNotify():
	case err := <-srv.Err():
		e.Stop()
		return nil, fmt.Errorf("testserver: etcd failed while starting: %w", err)
	case <-time.After(etcdStartTimeout):
		e.Stop()
		return nil, fmt.Errorf("testserver: etcd not ready after %v", etcdStartTimeout)
	}

	for _, l := range srv.Clients {
		e.endpoints = append(e.endpoints, l.Addr().String())
	}
	return e, nil
}

// Endpoints returns the member's client endpoints ("127.0.0.1:PORT"), ready
// for clientv3.Config.Endpoints. The caller may modify the returned slice.
func (e *Etcd) Endpoints() []string {
	return append([]string(nil), e.endpoints...)
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

// Stop shuts the member down and removes its data directory. It returns after
// every goroutine of the server has exited, so a goroutine-leak check that
// runs afterwards sees only what the tests left. Clients should be closed
// first: the server waits up to about five seconds for open watch and
// keepalive streams before cutting them. Stop is idempotent.
func (e *Etcd) Stop() {
	if e.srv == nil {
		return
	}
	e.srv.Close()
	// Close has already waited for the server's goroutines; draining Err
	// confirms it (Close closes the channel last).
	for range e.srv.Err() {
	}
	e.srv = nil
	os.RemoveAll(e.dir)
}
