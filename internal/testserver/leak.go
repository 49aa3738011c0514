package testserver

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// leakOptions are the goroutines the leak check tolerates. None is needed
// today: once stopped, the embedded member, a cluster and every client leave
// no goroutine behind (etcd v3.7.3, grpc v1.83). An entry belongs here only
// if a library starts it for the life of the process whatever a test does;
// anything a test can stop must be stopped instead.
func leakOptions() []goleak.Option {
	return nil
}

// Run runs the test package: it calls setup, then m.Run, then the teardown
// setup returned, and then checks that no goroutine is left, before exiting
// the process with the tests' status. A leak fails an otherwise passing run.
// A setup error is printed and exits with status 1 without running the tests,
// so a server that cannot start fails the package, never skips it.
//
// Call Run from TestMain; it does not return. setup may be nil.
func Run(m *testing.M, setup func() (teardown func(), err error)) {
	os.Exit(run(m, setup))
}

func run(m *testing.M, setup func() (teardown func(), err error)) int {
	teardown := func() {}
	if setup != nil {
		td, err := setup()
		if err != nil {
			fmt.Fprintf(os.Stderr, "testserver: setup: %v\n", err)
			return 1
		}
		if td != nil {
			teardown = td
		}
	}
	code := m.Run()
	// The servers go first: their goroutines are expected until they stop,
	// and only what remains after that is a leak.
	teardown()
	if code != 0 {
		// A failed test may leave goroutines blocked on purpose (a stuck
		// waiter is often the failure); reporting them would bury the cause.
		return code
	}
	if err := goleak.Find(leakOptions()...); err != nil {
		fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
		return 1
	}
	return 0
}

// Main runs the test package with the goroutine-leak check and no servers.
// Call it from TestMain; it does not return.
func Main(m *testing.M) {
	Run(m, nil)
}

// RunWithEtcd starts one embedded etcd member for the whole test package,
// hands it to use (typically to store it in a package variable) before any
// test runs, and stops it after the last test, before the goroutine-leak
// check. It fails the package if etcd cannot start. Call it from TestMain; it
// does not return.
//
// Tests share the member, so each must use its own key names.
func RunWithEtcd(m *testing.M, use func(e *Etcd)) {
	Run(m, func() (func(), error) {
		e, err := StartEtcd()
		if err != nil {
			return nil, err
		}
		use(e)
		return e.Stop, nil
	})
}
