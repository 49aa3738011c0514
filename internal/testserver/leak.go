package testserver

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// leakSettle bounds how long the leak check waits for goroutines that are
// on their way out (a closed client's last reads, a timer's callback).
const leakSettle = 5 * time.Second

// runtimeOwned are frames of goroutines that the runtime or the testing
// package keep for the life of the process, whatever a test does. Nothing
// else is tolerated: anything a test can stop must be stopped instead.
var runtimeOwned = []string{
	"testing.(*M).",
	"testing.tRunner(",
	"testing.(*T).Run(",
	"os/signal.signal_recv",
	"os/signal.loop",
	"runtime.ensureSigM",
	"runtime/trace.",
	"runtime.ReadTrace",
}

// leaks returns the stacks of the goroutines left besides the caller's and
// the runtime's own, waiting up to leakSettle for them to end. It is the
// library module's own leak check, so that the module requires no test
// library.
func leaks() []string {
	deadline := time.Now().Add(leakSettle)
	for {
		left := otherGoroutines()
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func otherGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	stacks := strings.Split(string(buf), "\n\n")
	var left []string
	for _, st := range stacks[1:] { // the first is the caller's
		if st = strings.TrimSpace(st); st == "" || owned(st) {
			continue
		}
		left = append(left, st)
	}
	return left
}

func owned(stack string) bool {
	for _, f := range runtimeOwned {
		if strings.Contains(stack, f) {
			return true
		}
	}
	return false
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
	if left := leaks(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "testserver: %d goroutines leaked by a successful test run:\n\n%s\n", len(left), strings.Join(left, "\n\n"))
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
