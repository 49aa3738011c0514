package zksync_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// TestErrorsNameTheName: errors quote the user's name, not only its
// encoded node.
func TestErrorsNameTheName(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := session(t)
	name := "jobs/" + t.Name()
	want := strconv.Quote(name)
	check := func(what string, err, sentinel error) {
		t.Helper()
		if !errors.Is(err, sentinel) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %v naming %s", what, err, sentinel, want)
		}
	}
	m, _ := s.Mutex(name)
	l, err := m.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	_, err = m.TryLock(ctx)
	check("TryLock", err, distsync.ErrWouldBlock)
	if !strings.Contains(err.Error(), want+" is held") {
		t.Errorf("TryLock: %v, want %s is held", err, want)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	_, err = m.Lock(short)
	check("Lock past its context", err, distsync.ErrNotAcquired)

	sem, err := s.Semaphore(ctx, name+"-sem", 2)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Release(ctx)
	_, err = s.Semaphore(ctx, name+"-sem", 3)
	want = strconv.Quote(name + "-sem")
	check("Semaphore with another limit", err, distsync.ErrLimitMismatch)

	e, _ := s.Election(name + "-election")
	_, err = e.Leader(ctx)
	want = strconv.Quote(name + "-election")
	check("Leader with no candidate", err, distsync.ErrNoLeader)
}
