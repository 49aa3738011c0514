package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// forwarded are the signals distsync catches: they cancel a wait, end a
// hold without a command, and are forwarded to a command's process group.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// signals receives the forwarded signals from the moment it is made.
type signals struct{ ch chan os.Signal }

func notify() *signals {
	s := &signals{ch: make(chan os.Signal, 8)}
	signal.Notify(s.ch, forwarded...)
	return s
}

func (s *signals) stop() { signal.Stop(s.ch) }

// signalError is the cause of a context cancelled by a signal.
type signalError struct{ sig os.Signal }

func (e *signalError) Error() string { return fmt.Sprintf("distsync: received %v", e.sig) }

// watch returns a copy of parent that is cancelled when a signal arrives.
// end stops the watch and returns the signal that cancelled the context,
// or nil; after end, signals queue on s.ch again. end may be called more
// than once.
func (s *signals) watch(parent context.Context) (ctx context.Context, end func() os.Signal) {
	ctx, cancel := context.WithCancelCause(parent)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var got os.Signal
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case got = <-s.ch:
			cancel(&signalError{got})
		case <-quit:
		}
	}()
	var once sync.Once
	return ctx, func() os.Signal {
		once.Do(func() {
			close(quit)
			wg.Wait()
			cancel(nil)
		})
		return got
	}
}

// signalExit is the exit code for a wait ended by sig: 128+N, as shells
// report a process killed by signal N.
func signalExit(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 128
}
