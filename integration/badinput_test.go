package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/distsync/distsync"
)

// The bad-input tables of issue 7: every exported constructor and method
// of every primitive and backend, fed what a caller should not pass. Each
// case must return an error wrapping the contract's sentinel (errors.Is),
// never panic or hang, and leave no backend state behind; the package's
// TestMain checks that no goroutine is left. The tables are in
// badinput_etcd_test.go, badinput_redis_test.go and
// badinput_zookeeper_test.go.

// badNames are names every constructor must refuse with ErrInvalidName.
var badNames = []struct{ label, name string }{
	{"empty", ""},
	{"huge", strings.Repeat("n", distsync.MaxNameLen+1)},
	{"huge-1MiB", strings.Repeat("n", 1<<20)},
	{"huge-multibyte", strings.Repeat("é", distsync.MaxNameLen/2+1)},
	{"NUL", "a\x00b"},
	{"non-UTF-8", "a\xffb"},
	{"truncated-UTF-8", "a\xc3"},
	{"newline", "a\nb"},
	{"C1-control", "a\u0085b"},
}

// ctxCases are the contexts an acquire call must give up on at once.
var ctxCases = []struct {
	label string
	ctx   func() context.Context
	err   error
}{
	{"cancelled", func() context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}, context.Canceled},
	{"expired", func() context.Context {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		cancel() // keeps DeadlineExceeded: the deadline came first
		return ctx
	}, context.DeadlineExceeded},
}

// badCase is one bad input. setup runs on the test goroutine (it may fail
// t) and returns the call under test, which runs guarded against panics
// and hangs; its error must wrap every error in want. left, if set, lists
// backend state that must be gone afterwards.
type badCase struct {
	name  string
	want  []error
	setup func(t *testing.T) func() error
	left  func(t *testing.T) []string
}

// is returns want as a slice, for brevity in the tables.
func is(want ...error) []error { return want }

// runBadCases runs every case as a subtest and returns how many ran.
func runBadCases(t *testing.T, cases []badCase) int {
	t.Helper()
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("case %q twice in the table", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			call := tc.setup(t)
			err := guarded(t, 20*time.Second, call)
			if len(tc.want) == 0 && err != nil {
				t.Errorf("got %v, want no error", err)
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("got %v, want an error wrapping %q", err, w)
				}
			}
			if tc.left == nil {
				return
			}
			// A removal the call could not confirm goes on in the
			// background: give it a moment.
			deadline := time.Now().Add(5 * time.Second)
			for {
				left := tc.left(t)
				if len(left) == 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("left behind: %q", left)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	return len(cases)
}

// guarded runs call and returns its error; a panic or a call that does not
// return within d fails t.
func guarded(t *testing.T, d time.Duration, call func() error) error {
	t.Helper()
	type result struct {
		err      error
		panicked any
		ok       bool
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{panicked: p}
			}
		}()
		err := call()
		done <- result{err: err, ok: true}
	}()
	select {
	case r := <-done:
		if !r.ok {
			t.Fatalf("panic: %v", r.panicked)
		}
		return r.err
	case <-time.After(d):
		t.Fatalf("hang: no return within %v", d)
		return nil
	}
}

// acquirer is one acquire-like call of a primitive, for the context,
// closed and release cases.
type acquirer struct {
	label string
	// open returns the call on a fresh primitive called name, on a
	// session of its own; with closed, the session (or the primitive that
	// owns it) was closed first.
	open func(t *testing.T, name string, closed bool) func(context.Context) (distsync.Lease, error)
	// blocking calls can hold a lease for the release cases (the Try forms
	// share their lease with the blocking ones).
	blocking bool
}

// acquireCases are the cases every backend's acquire calls share:
// cancelled and expired contexts, a closed session, Release twice, and
// Release after a loss (lose deletes the lease's state from outside).
func acquireCases(backend string, as []acquirer, left func(t *testing.T, name string) []string, lose func(t *testing.T, l distsync.Lease)) []badCase {
	var cases []badCase
	leftOf := func(name string) func(t *testing.T) []string {
		return func(t *testing.T) []string { return left(t, name) }
	}
	for _, a := range as {
		for _, cc := range ctxCases {
			name := fmt.Sprintf("badinput-%s-%s-%s", backend, a.label, cc.label)
			cases = append(cases, badCase{
				name: a.label + "/" + cc.label + "-context",
				want: is(distsync.ErrNotAcquired, cc.err),
				setup: func(t *testing.T) func() error {
					f := a.open(t, name, false)
					return func() error { return releaseIfHeld(f(cc.ctx())) }
				},
				left: leftOf(name),
			})
		}
		name := fmt.Sprintf("badinput-%s-%s-closed", backend, a.label)
		cases = append(cases, badCase{
			name: a.label + "/after-close",
			want: is(distsync.ErrClosed),
			setup: func(t *testing.T) func() error {
				f := a.open(t, name, true)
				return func() error { return releaseIfHeld(f(context.Background())) }
			},
			left: leftOf(name),
		})
		if !a.blocking {
			continue
		}
		name = fmt.Sprintf("badinput-%s-%s-release-twice", backend, a.label)
		cases = append(cases, badCase{
			name: a.label + "/release-twice",
			want: is(distsync.ErrReleased),
			setup: func(t *testing.T) func() error {
				f := a.open(t, name, false)
				return func() error {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					l, err := f(ctx)
					if err != nil {
						return err
					}
					first, second := l.Release(ctx), l.Release(ctx)
					if first != nil || second != nil {
						return fmt.Errorf("Release: %v, then %v; want nil twice", first, second)
					}
					if l, ok := l.(distsync.Leadership); ok {
						if err := l.Proclaim(ctx, []byte("x")); !errors.Is(err, distsync.ErrReleased) {
							return fmt.Errorf("Proclaim after Release: %v, want ErrReleased", err)
						}
					}
					return l.Err()
				}
			},
			left: leftOf(name),
		})
		name = fmt.Sprintf("badinput-%s-%s-release-lost", backend, a.label)
		cases = append(cases, badCase{
			name: a.label + "/release-after-loss",
			want: is(distsync.ErrLost),
			setup: func(t *testing.T) func() error {
				f := a.open(t, name, false)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t.Cleanup(cancel)
				l, err := f(ctx)
				if err != nil {
					t.Fatal(err)
				}
				lose(t, l)
				return func() error {
					select {
					case <-l.Done():
					case <-ctx.Done():
						return errors.New("lease not told of its loss")
					}
					if err := l.Release(ctx); err != nil {
						return fmt.Errorf("Release after loss: %w", err)
					}
					if err := l.Release(ctx); err != nil {
						return fmt.Errorf("second Release after loss: %w", err)
					}
					if l, ok := l.(distsync.Leadership); ok {
						if err := l.Proclaim(ctx, []byte("x")); !errors.Is(err, distsync.ErrLost) {
							return fmt.Errorf("Proclaim after loss: %v, want ErrLost", err)
						}
					}
					return l.Err()
				}
			},
			left: leftOf(name),
		})
	}
	return cases
}

// releaseIfHeld releases a lease an acquire call should not have returned
// and reports it.
func releaseIfHeld(l distsync.Lease, err error) error {
	if err == nil {
		_ = l.Release(context.Background())
		return errors.New("acquired")
	}
	return err
}

// nameCases are the bad-name cases of the constructors in ctors.
func nameCases(ctors map[string]func(t *testing.T, name string) func() error) []badCase {
	var cases []badCase
	for label, ctor := range ctors {
		for _, n := range badNames {
			cases = append(cases, badCase{
				name:  label + "/name-" + n.label,
				want:  is(distsync.ErrInvalidName),
				setup: func(t *testing.T) func() error { return ctor(t, n.name) },
			})
		}
	}
	return cases
}

// TestBadInputRoot covers the contract package's own entry points.
func TestBadInputRoot(t *testing.T) {
	cases := []badCase{
		{name: "Run/nil-election", want: is(distsync.ErrInvalidConfig), setup: func(*testing.T) func() error {
			return func() error {
				return distsync.Run(context.Background(), nil, nil, distsync.Callbacks{OnStartedLeading: func(context.Context, distsync.Leadership) {}})
			}
		}},
		{name: "Run/nil-OnStartedLeading", want: is(distsync.ErrInvalidConfig), setup: func(*testing.T) func() error {
			return func() error { return distsync.Run(context.Background(), newTestElection(), nil, distsync.Callbacks{}) }
		}},
	}
	for _, n := range badNames {
		cases = append(cases, badCase{name: "ValidateName/" + n.label, want: is(distsync.ErrInvalidName),
			setup: func(*testing.T) func() error { return func() error { return distsync.ValidateName(n.name) } }})
	}
	t.Logf("%d cases", runBadCases(t, cases))
}

// newTestElection is an election no one should reach: Run must refuse
// before it is used.
func newTestElection() distsync.Election { return unusedElection{} }

type unusedElection struct{}

func (unusedElection) Campaign(context.Context, []byte) (distsync.Leadership, error) {
	panic("Run used an election with a nil OnStartedLeading")
}
func (unusedElection) Leader(context.Context) (distsync.Leader, error) {
	panic("Run used an election with a nil OnStartedLeading")
}
func (unusedElection) Observe(context.Context) <-chan distsync.Leader {
	panic("Run used an election with a nil OnStartedLeading")
}

// errOf is the error of a constructor's result, closing what it opened
// should it succeed.
func errOf[T any](v T, err error) error {
	if err == nil {
		if c, ok := any(v).(interface{ Close() error }); ok {
			_ = c.Close()
		}
		return errors.New("constructed")
	}
	return err
}

// drained reads ch until it is closed; a channel still open after 10s is
// an error.
func drained[T any](ch <-chan T) error {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return nil
			}
		case <-timeout:
			return errors.New("channel still open 10s after its context ended")
		}
	}
}

func itoa(n int64) string { return fmt.Sprint(n) }

// closeTwice closes c twice: the first Close may report a failure, the
// second must return the same.
func closeTwice(c interface{ Close() error }) error {
	first, second := c.Close(), c.Close()
	if first != nil || second != nil {
		return fmt.Errorf("Close: %v, then %v; want nil twice", first, second)
	}
	return nil
}
