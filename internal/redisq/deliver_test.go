package redisq

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/distsync/distsync/internal/telemetry"
)

// A release's reply names the members it granted, as published: one line
// per waiter of a mutex, every reader let in after a writer, none when
// nobody waits.
func TestReleaseReplyNamesGrants(t *testing.T) {
	c := scriptClient(t)
	ctx := context.Background()
	k := KeysWith(DefaultPrefix, "reply")
	w, r1, r2 := "x|10000|1|sw|1", "s|10000|1|sr|1", "s|10000|1|sr|2"
	for _, m := range []string{w, r1, r2} {
		if _, err := run(ctx, c, acquireScript, k, m, 0, acquireArgs()...); err != nil {
			t.Fatal(err)
		}
	}
	got, err := run(ctx, c, releaseScript, k, w, 0)
	if err != nil || got.status != 1 {
		t.Fatalf("release: %+v, %v", got, err)
	}
	var want []any
	for _, m := range []string{r1, r2} {
		tok, err := c.HGet(ctx, k.Tokens, m).Uint64()
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("%s %d 0", m, tok))
	}
	if !slices.Equal(got.extra, want) {
		t.Errorf("release reply names %v, want %v", got.extra, want)
	}
	for _, m := range []string{r1, r2} {
		got, err := run(ctx, c, releaseScript, k, m, 0)
		if err != nil || got.status != 1 || len(got.extra) != 0 {
			t.Errorf("release of %s with nobody waiting: %+v, %v; want held and no grant", m, got, err)
		}
	}
}

// deliver hands a grant line to the waiter of this process it names, in
// any Session, and to nobody once the waiter left.
func TestDeliver(t *testing.T) {
	c := scriptClient(t)
	ctx := context.Background()
	s, err := NewSession(ctx, c, Options{TTL: time.Second, Prefix: DefaultPrefix, Identity: "host:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := s.Keys("deliver")
	m := s.member('x', 1)
	sb, err := s.hub.wait(k, m)
	if err != nil {
		t.Fatal(err)
	}
	deliver([]any{"x|1000|1|other|1 7 0", m + " 42 3", "malformed"})
	select {
	case <-sb.wake:
	default:
		t.Fatal("the waiter named was not woken")
	}
	if tok, limit := sb.granted(); tok != 42 || limit != 3 {
		t.Errorf("granted %d under limit %d, want 42 under 3", tok, limit)
	}
	s.hub.unwait(sb)
	deliver([]any{m + " 43 3"})
	if tok, _ := sb.granted(); tok != 42 {
		t.Errorf("a waiter that left took the grant %d", tok)
	}
	if _, ok := locals.Load(m); ok {
		t.Error("the waiter that left is still registered")
	}
}

// A waiter whose own pub/sub connection hears nothing still holds at once
// when a holder of the same process releases, or its member is deleted
// after its caller gave up (abandon): the release script's reply wakes it.
// Without that it would hold only at its re-check, TTL/3 later.
func TestReleaseWakesLocalWaiter(t *testing.T) {
	for _, how := range []string{"release", "abandon"} {
		t.Run(how, func(t *testing.T) {
			c := scriptClient(t)
			ctx := context.Background()
			const ttl = time.Minute
			open := func() *Queue {
				s, err := NewSession(ctx, c, Options{TTL: ttl, Prefix: DefaultPrefix, Identity: "host:1"})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				q, err := NewQueue(s, "local", 0, telemetry.Mutex)
				if err != nil {
					t.Fatal(err)
				}
				return q
			}
			qa, qb := open(), open()
			// b's hub no longer hears its own channel.
			if err := qb.s.hub.current().Unsubscribe(ctx, qb.s.hub.own); err != nil {
				t.Fatal(err)
			}
			la, err := qa.Acquire(ctx, 'x', 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			go func() {
				lb, err := qb.Acquire(ctx, 'x', 1, nil)
				if err == nil {
					err = lb.Release(ctx)
				}
				got <- err
			}()
			// b is queued once the queue has it.
			for c.ZCard(ctx, qb.k.Queue).Val() == 0 {
				time.Sleep(time.Millisecond)
			}
			if how == "abandon" {
				qa.abandon(nil, la.member)
			}
			if err := la.Release(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-got:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(ttl / 6):
				t.Fatalf("the waiter did not hold within %v (its re-check comes at %v)", ttl/6, ttl/3)
			}
		})
	}
}
