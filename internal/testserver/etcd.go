package testserver

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/distsync/distsync/internal/localetcd"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// dialTimeout is the DialTimeout of every client this package hands out.
const dialTimeout = 5 * time.Second

// Etcd is one embedded etcd member (see localetcd.Server: loopback port,
// temporary data directory, Endpoints, Stop). Its methods other than Stop are
// safe for concurrent use; a test package usually shares one member through
// [RunWithEtcd] and keeps tests apart by giving each its own key names.
//
// The member ticks every 10ms with a 100ms election timeout, as etcd's own
// integration framework does, so the smallest lease TTL etcd grants is one
// second rather than two and sessions expire quickly in tests. Writes skip
// fsync: the data directory is thrown away.
type Etcd struct {
	*localetcd.Server
}

// StartEtcd starts an embedded etcd member and returns once it has elected
// itself leader and serves requests. It needs no *testing.T so that TestMain
// can call it. On error nothing is left running and the data directory is
// removed. The caller must call [Etcd.Stop].
func StartEtcd() (*Etcd, error) {
	s, err := localetcd.Start(stderrLogger())
	if err != nil {
		return nil, fmt.Errorf("testserver: %w", err)
	}
	return &Etcd{Server: s}, nil
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
