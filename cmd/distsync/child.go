package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// held is what the runner watches: a Lease's end.
type held interface {
	Done() <-chan struct{}
	Err() error
}

// child is one run of the command under a held lease.
type child struct {
	argv  []string
	env   []string      // the whole environment of the command
	log   io.Writer     // distsync's own messages
	grace time.Duration // SIGTERM to SIGKILL on loss
	// onLoss is called once when the lease ends before the command,
	// right after the group got SIGTERM; it logs.
	onLoss func(err error)
}

// run starts the command in a process group of its own and waits for it.
// Signals from sigs are forwarded to the group. When l ends first, the
// group gets SIGTERM at once and SIGKILL after the grace, and whatever of
// the group is left when the command exits gets SIGKILL: run returns
// exitLost then. Otherwise it returns the command's exit code (128+N when
// a signal N killed it), leaving the rest of its group alone. A command
// that cannot start gives exitNoStart.
func (c *child) run(l held, sigs <-chan os.Signal) int {
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Env = c.env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(c.log, "distsync: cannot start %s: %v\n", c.argv[0], err)
		return exitNoStart
	}
	pgid := cmd.Process.Pid
	exited := make(chan *os.ProcessState, 1)
	go func() {
		_ = cmd.Wait() // the exit status is in ProcessState
		exited <- cmd.ProcessState
	}()

	done := l.Done()
	var lost bool
	var kill <-chan time.Time
	for {
		select {
		case sig := <-sigs:
			if s, ok := sig.(syscall.Signal); ok {
				_ = syscall.Kill(-pgid, s)
			}
		case <-done:
			done = nil
			lost = true
			// Stop first, log after: someone else may hold it now.
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			if c.onLoss != nil {
				c.onLoss(l.Err())
			}
			t := time.NewTimer(c.grace)
			defer t.Stop()
			kill = t.C
		case <-kill:
			kill = nil
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		case ps := <-exited:
			if lost {
				// The leader is gone; its group may not be
				// (grandchildren that ignored SIGTERM or were
				// not stopped by it).
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
				return exitLost
			}
			return exitStatus(ps)
		}
	}
}

// exitStatus is the exit code a shell would report for ps.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// childEnv is the environment of the command: the parent's plus the
// lease's, without DISTSYNC_PASSWORD (the command has no use for the
// backend's password).
func childEnv(base []string, name string, token uint64, backend, holder string) []string {
	env := make([]string, 0, len(base)+4)
	for _, kv := range base {
		if !hasAnyPrefix(kv, "DISTSYNC_NAME=", "DISTSYNC_TOKEN=", "DISTSYNC_BACKEND=", "DISTSYNC_HOLDER=", "DISTSYNC_PASSWORD=") {
			env = append(env, kv)
		}
	}
	return append(env,
		"DISTSYNC_NAME="+name,
		fmt.Sprintf("DISTSYNC_TOKEN=%d", token),
		"DISTSYNC_BACKEND="+backend,
		"DISTSYNC_HOLDER="+holder,
	)
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if len(s) >= len(p) && s[:len(p)] == p {
			return true
		}
	}
	return false
}
