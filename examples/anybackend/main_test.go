package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/distsync/distsync/distsynctest"
)

// TestAnyBackend runs the one program on all three backends, changing only
// the backend open uses, and expects the same output from each.
func TestAnyBackend(t *testing.T) {
	etcd := distsynctest.Etcd(t)
	rd := distsynctest.Redis(t)
	zk := distsynctest.ZooKeeper(t)

	const want = `mutex: held, then TryLock elsewhere would block
rwmutex: 2 readers at once, then the writer alone
semaphore: 2 of 3 permits in one lease, then 1 more, then full
election: "anybackend" leads, then nobody
`
	for _, b := range []struct{ name, addr string }{
		{"etcd", etcd.Endpoints()[0]},
		{"redis", rd.Addr()},
		{"zookeeper", zk.Addr()},
	} {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s, err := open(ctx, b.name, b.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var out bytes.Buffer
			if err := work(ctx, s, "anybackend", &out); err != nil {
				t.Fatal(err)
			}
			if out.String() != want {
				t.Fatalf("output on %s:\n%s\nwant:\n%s", b.name, out.String(), want)
			}
		})
	}
}
