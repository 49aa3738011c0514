package zksync_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
)

func newElection(t *testing.T, name string) *zksync.Election {
	t.Helper()
	e, err := session(t).Election(name)
	if err != nil {
		t.Fatal(err)
	}
	return e.(*zksync.Election)
}

// next returns the next observation, failing after 10 s.
func next(t *testing.T, ch <-chan distsync.Leader) distsync.Leader {
	t.Helper()
	select {
	case l, ok := <-ch:
		if !ok {
			t.Fatal("observer channel closed")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no observation within 10s")
	}
	return distsync.Leader{}
}

func TestElectionCampaignProclaimResign(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newElection(t, t.Name())
	if _, err := e.Leader(ctx); !errors.Is(err, distsync.ErrNoLeader) {
		t.Fatalf("Leader of a new election: %v, want ErrNoLeader", err)
	}
	octx, ostop := context.WithCancel(ctx)
	defer ostop()
	obs := e.Observe(octx)
	if l := next(t, obs); !l.None {
		t.Fatalf("first observation %+v, want no leader", l)
	}

	l, err := e.Campaign(ctx, []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := next(t, obs); got.None || got.Term != l.Token() || string(got.Value) != "v1" {
		t.Fatalf("observed %+v, want term %d value v1", got, l.Token())
	}
	if err := l.Proclaim(ctx, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	if got := next(t, obs); got.Term != l.Token() || string(got.Value) != "v2" {
		t.Fatalf("observed %+v after Proclaim, want term %d value v2", got, l.Token())
	}
	if got, err := e.Leader(ctx); err != nil || got.Term != l.Token() || string(got.Value) != "v2" {
		t.Fatalf("Leader = %+v, %v; want term %d value v2", got, err, l.Token())
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := next(t, obs); !got.None {
		t.Fatalf("observed %+v after the resignation, want no leader", got)
	}
	if err := l.Proclaim(ctx, []byte("late")); !errors.Is(err, distsync.ErrReleased) {
		t.Fatalf("Proclaim after Release: %v, want ErrReleased", err)
	}
	if _, err := e.Leader(ctx); !errors.Is(err, distsync.ErrNoLeader) {
		t.Fatalf("Leader after the resignation: %v, want ErrNoLeader", err)
	}
}

// TestElectionProclaimAfterDeletion: a leader whose node was deleted from
// outside cannot proclaim, and learns it lost.
func TestElectionProclaimAfterDeletion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newElection(t, t.Name())
	l, err := e.Campaign(ctx, []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	path := l.(*zksync.Leadership).Path()
	if err := session(t).Conn().Delete(path, -1); err != nil {
		t.Fatal(err)
	}
	if err := l.Proclaim(ctx, []byte("v2")); !errors.Is(err, distsync.ErrLost) {
		t.Fatalf("Proclaim on a deleted node: %v, want ErrLost", err)
	}
	<-l.Done()
	if !errors.Is(l.Err(), distsync.ErrLost) {
		t.Fatalf("Err = %v, want ErrLost", l.Err())
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release of a lost leadership: %v", err)
	}
}

// TestElectionObserveOutlivesSession: an observer's channel closes only
// when its context ends, even after its Session was closed, and its
// goroutine ends then (the leak check in TestMain checks).
func TestElectionObserveOutlivesSession(t *testing.T) {
	s := session(t)
	e, err := s.Election(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	obs := e.Observe(ctx)
	next(t, obs)
	_ = s.Close()
	select {
	case l, ok := <-obs:
		t.Fatalf("observer delivered %+v (open %t) after the Session closed", l, ok)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case _, ok := <-obs:
		if ok {
			t.Fatal("observation after ctx ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("observer channel not closed within 5s of ctx's end")
	}
	if _, err := e.Campaign(context.Background(), nil); !errors.Is(err, distsync.ErrClosed) {
		t.Fatalf("Campaign on a closed Session: %v, want ErrClosed", err)
	}
}

// TestElectionRun: distsync.Run hands leadership from one runner to the
// next when the first one's context ends.
func TestElectionRun(t *testing.T) {
	name := t.Name()
	started := make(chan string, 2)
	run := func(id string) (context.CancelFunc, <-chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		e := newElection(t, name)
		go func() {
			errc <- distsync.Run(ctx, e, []byte(id), distsync.Callbacks{
				OnStartedLeading: func(ctx context.Context, _ distsync.Leadership) {
					started <- id
					<-ctx.Done()
				},
			})
		}()
		return cancel, errc
	}
	cancelA, errA := run("a")
	if got := <-started; got != "a" {
		t.Fatalf("first leader %q, want a", got)
	}
	cancelB, errB := run("b")
	defer cancelB()
	cancelA()
	if err := <-errA; err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-started:
		if got != "b" {
			t.Fatalf("second leader %q, want b", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b did not lead within 10s of a's shutdown")
	}
	cancelB()
	if err := <-errB; err != nil {
		t.Fatal(err)
	}
}
