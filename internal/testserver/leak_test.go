package testserver

import (
	"strings"
	"testing"
	"time"
)

// TestLeakCheckCatchesALeak is the leak check's control: a goroutine left
// blocked is reported, and it is not once it ended.
func TestLeakCheckCatchesALeak(t *testing.T) {
	block := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		<-block
	}()
	time.Sleep(10 * time.Millisecond)
	if !reported("TestLeakCheckCatchesALeak.func1") {
		t.Fatal("a blocked goroutine was not reported")
	}
	close(block)
	<-ended
	time.Sleep(10 * time.Millisecond)
	if reported("TestLeakCheckCatchesALeak.func1") {
		t.Fatal("a goroutine was reported after it ended")
	}
}

// reported tells whether the check reports a goroutine running fn. The
// package's shared etcd member has goroutines of its own while tests run,
// so the control looks for its own only.
func reported(fn string) bool {
	for _, st := range otherGoroutines() {
		if strings.Contains(st, fn) {
			return true
		}
	}
	return false
}
