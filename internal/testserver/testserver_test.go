package testserver_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/distsync/distsync/internal/testserver"
)

var etcd *testserver.Etcd

func TestMain(m *testing.M) {
	testserver.RunWithEtcd(m, func(e *testserver.Etcd) { etcd = e })
}

func TestEtcdPutGet(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cli := etcd.Client(t)

	if _, err := cli.Put(ctx, t.Name(), "v"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	resp, err := cli.Get(ctx, t.Name())
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("Get = %v, want one key with value v", resp.Kvs)
	}
}

func TestEtcdCompact(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cli := etcd.Client(t)

	put, err := cli.Put(ctx, t.Name(), "1")
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := cli.Put(ctx, t.Name(), "2"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := etcd.Compact(ctx); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if err := etcd.Compact(ctx); err != nil {
		t.Fatalf("second Compact: %v", err)
	}

	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wr, ok := <-cli.Watch(wctx, t.Name(), clientv3.WithRev(put.Header.Revision))
	if !ok {
		t.Fatal("watch channel closed without a response")
	}
	if !errors.Is(wr.Err(), rpctypes.ErrCompacted) {
		t.Fatalf("watch from revision %d: err = %v, want %v", put.Header.Revision, wr.Err(), rpctypes.ErrCompacted)
	}
}
