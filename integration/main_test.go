package integration

import (
	"testing"

	"github.com/distsync/distsync/internal/testserver"
)

// etcdServer is the embedded etcd member shared by this package's tests and
// benchmarks; each test uses names of its own.
var etcdServer *testserver.Etcd

func TestMain(m *testing.M) {
	testserver.RunWithEtcd(m, func(e *testserver.Etcd) { etcdServer = e })
}
