package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/distsync/distsync"
)

// The exit codes distsync reserves, above the shells' 126-165.
const (
	exitOK       = 0
	exitConflict = 171 // the default of --conflict-exit-code
	exitLost     = 172
	exitBackend  = 173
	exitUsage    = 174
	exitNoStart  = 175
	exitNoLeader = 176
	exitNotFound = 177
)

// verbs maps each verb to what it does with its parsed config.
var verbs = map[string]func(c *config, sigs *signals) int{
	"lock":    runLock,
	"rlock":   runLock,
	"wlock":   runLock,
	"sem":     runSem,
	"elect":   runElect,
	"leader":  runLeader,
	"observe": runObserve,
	"inspect": runInspect,
	"unlock":  runUnlock,
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is distsync with args, returning its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainHelp)
		return exitUsage
	}
	switch verb := args[0]; verb {
	case "help", "-h", "-help", "--help":
		return help(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "distsync", version())
		return exitOK
	default:
		do, ok := verbs[verb]
		if !ok {
			fmt.Fprintf(stderr, "distsync: unknown verb %q\n\n%s", verb, mainHelp)
			return exitUsage
		}
		c, err := parse(verb, args[1:], os.LookupEnv)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, verbHelp(verb))
			return exitOK
		}
		if err != nil {
			fmt.Fprintf(stderr, "distsync %s: %v\n\n%s\nRun 'distsync help %s' for the flags.\n", verb, err, verbUsage[verb], verb)
			return exitUsage
		}
		c.stdout, c.stderr = stdout, stderr
		sigs := notify()
		defer sigs.stop()
		return do(c, sigs)
	}
}

// help prints the help of distsync or of one verb.
func help(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		fmt.Fprint(stdout, mainHelp)
		return exitOK
	case len(args) == 1 && verbs[args[0]] != nil:
		fmt.Fprint(stdout, verbHelp(args[0]))
		return exitOK
	}
	fmt.Fprintf(stderr, "distsync help: unknown verb %q\n\n%s", args[0], mainHelp)
	return exitUsage
}

// version is the module version distsync was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	return fmt.Sprintf("%s (%s)", bi.Main.Version, bi.GoVersion)
}

// exitCode maps a library error to distsync's exit code; conflict is the
// code for ErrWouldBlock.
func exitCode(err error, conflict int) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, distsync.ErrWouldBlock):
		return conflict
	case errors.Is(err, distsync.ErrInvalidName),
		errors.Is(err, distsync.ErrInvalidConfig),
		errors.Is(err, distsync.ErrLimitMismatch):
		return exitUsage
	case errors.Is(err, distsync.ErrNoLeader):
		return exitNoLeader
	case errors.Is(err, distsync.ErrNotFound):
		return exitNotFound
	case errors.Is(err, distsync.ErrLost):
		return exitLost
	default: // ErrUnavailable, ErrDenied, ErrClosed and the unexpected
		return exitBackend
	}
}

// fail reports err on stderr and returns its exit code.
func fail(c *config, err error) int {
	fmt.Fprintf(c.stderr, "distsync %s %s: %v\n", c.verb, c.name, err)
	return exitCode(err, c.conflict)
}
