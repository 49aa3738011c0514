package leaseend

import (
	"errors"
	"sync"
	"testing"

	"github.com/distsync/distsync/internal/testserver"
)

func TestMain(m *testing.M) { testserver.Main(m) }

func TestEndsOnceWithTheFirstReason(t *testing.T) {
	var e End
	if e.Err() != nil {
		t.Fatal("Err before the end")
	}
	select {
	case <-e.Done():
		t.Fatal("Done closed before the end")
	default:
	}
	first, second := errors.New("lost"), errors.New("released")
	var wg sync.WaitGroup
	var wins sync.Map
	for i, err := range []error{first, second, first, second} {
		wg.Go(func() {
			if e.Set(err) {
				wins.Store(i, err)
			}
		})
	}
	wg.Wait()
	n := 0
	wins.Range(func(_, v any) bool {
		n++
		if v != e.Err() {
			t.Errorf("the winning Set(%v) is not Err %v", v, e.Err())
		}
		return true
	})
	if n != 1 {
		t.Fatalf("%d Set calls ended the lease, want 1", n)
	}
	<-e.Done()
}
