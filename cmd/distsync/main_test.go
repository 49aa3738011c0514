package main

import (
	"testing"

	"github.com/distsync/distsync/internal/testserver"
)

// etcd is the member the tests that need a backend share; each uses its own
// names.
var etcd *testserver.Etcd

func TestMain(m *testing.M) {
	testserver.RunWithEtcd(m, func(e *testserver.Etcd) { etcd = e })
}
