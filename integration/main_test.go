package integration

import (
	"errors"
	"testing"

	"github.com/distsync/distsync/internal/testserver"
)

// etcdServer is the embedded etcd member shared by this package's tests and
// benchmarks; each test uses names of its own.
var etcdServer *testserver.Etcd

// servers start the other backends' servers for the whole package. A
// backend's test file appends its starter in an init function; a starter
// that fails fails the package (never skips it).
var servers []func() (stop func(), err error)

func TestMain(m *testing.M) {
	testserver.Run(m, func() (func(), error) {
		var stops []func()
		stopAll := func() {
			for i := len(stops) - 1; i >= 0; i-- {
				stops[i]()
			}
		}
		e, err := testserver.StartEtcd()
		if err != nil {
			return nil, err
		}
		etcdServer = e
		stops = append(stops, e.Stop)
		for _, start := range servers {
			stop, err := start()
			if err != nil {
				stopAll()
				return nil, errors.Join(errors.New("integration: start backend server"), err)
			}
			stops = append(stops, stop)
		}
		return stopAll, nil
	})
}
