package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/distsync/distsync"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{usagef("bad"), 174},
		{distsync.Errorf(distsync.ErrWouldBlock, nil, "held"), 9},
		{distsync.ErrInvalidName, 174},
		{fmt.Errorf("open: %w", distsync.ErrInvalidConfig), 174},
		{distsync.ErrLimitMismatch, 174},
		{distsync.ErrNoLeader, 176},
		{distsync.ErrNotFound, 177},
		{distsync.Lost(distsync.LossDeleted, nil, "gone"), 172},
		{distsync.Errorf(distsync.ErrUnavailable, context.DeadlineExceeded, "dial"), 173},
		{distsync.ErrDenied, 173},
		{distsync.ErrClosed, 173},
		{errors.New("something else"), 173},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err, 9); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
