package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/internal/redisq"
)

// TestRedisCloseWhileWaiting closes sessions while their acquisitions wait
// behind a holder, and reads from the server, as soon as Close returned,
// that only the holder's entry is left: Close removes its session's
// waiting entries itself (nothing else would run a script on an idle name
// to reclaim them). Close must still return within about a second.
func TestRedisCloseWhileWaiting(t *testing.T) {
	const (
		rounds   = 10
		sessions = 4
		perSess  = 8
	)
	admin := redisClient(t)
	bg := context.Background()
	for _, kind := range []string{"mutex", "semaphore"} {
		t.Run(kind, func(t *testing.T) {
			name := fmt.Sprintf("close-waiting-%s-%d", kind, time.Now().UnixNano())
			k := redisq.KeysFor(name)
			open := func(s *redissync.Session) func(ctx context.Context) (distsync.Lease, error) {
				if kind == "mutex" {
					m, err := s.Mutex(name)
					if err != nil {
						t.Fatal(err)
					}
					return m.Lock
				}
				sem, err := s.Semaphore(context.Background(), name, 1)
				if err != nil {
					t.Fatal(err)
				}
				return sem.Acquire
			}
			hs := redisSession(t)
			l, err := open(hs)(bg)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release(bg)

			var (
				mu         sync.Mutex
				worstClose time.Duration
			)
			for round := range rounds {
				var ss []*redissync.Session
				var wg sync.WaitGroup
				errs := make(chan error, sessions*perSess)
				for range sessions {
					s := redisSession(t)
					ss = append(ss, s)
					acquire := open(s)
					for range perSess {
						wg.Go(func() {
							ctx, cancel := context.WithTimeout(bg, 20*time.Second)
							defer cancel()
							l, err := acquire(ctx)
							if err == nil {
								_ = l.Release(bg)
								err = errors.New("acquired behind a holder")
							}
							errs <- err
						})
					}
				}
				// Every waiter is queued.
				deadline := time.Now().Add(10 * time.Second)
				for {
					n, err := admin.ZCard(bg, k.Queue).Result()
					if err != nil {
						t.Fatal(err)
					}
					if n == sessions*perSess {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("round %d: %d waiters queued after 10s, want %d", round, n, sessions*perSess)
					}
					time.Sleep(5 * time.Millisecond)
				}
				var cw sync.WaitGroup
				for _, s := range ss {
					cw.Go(func() {
						start := time.Now()
						_ = s.Close()
						d := time.Since(start)
						if d > 1500*time.Millisecond {
							t.Errorf("round %d: Close took %v, want about a second at most", round, d)
						}
						mu.Lock()
						worstClose = max(worstClose, d)
						mu.Unlock()
					})
				}
				cw.Wait()
				// Right after Close: the server holds the holder alone.
				q, err := admin.ZRange(bg, k.Queue, 0, -1).Result()
				if err != nil {
					t.Fatal(err)
				}
				qx, err := admin.ZRange(bg, k.QueueExp, 0, -1).Result()
				if err != nil {
					t.Fatal(err)
				}
				h, err := admin.ZRange(bg, k.Holders, 0, -1).Result()
				if err != nil {
					t.Fatal(err)
				}
				keys := redisNameKeys(t, admin, name)
				if len(q) != 0 || len(qx) != 0 || len(h) != 1 || !strings.Contains(h[0], "|"+redisq.SessionID(hs)+"|") {
					t.Fatalf("round %d: after Close of the waiters' sessions: queue %q, queue expiry %q, holders %q (keys %q); want no waiter and the holder (session %s) alone",
						round, q, qx, h, keys, redisq.SessionID(hs))
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if !errors.Is(err, distsync.ErrClosed) {
						t.Errorf("round %d: waiter returned %v, want ErrClosed", round, err)
					}
				}
			}
			t.Logf("%s: %d rounds of %d sessions x %d waiters closed while waiting: no waiter entry left at Close's return; slowest Close %v",
				kind, rounds, sessions, perSess, worstClose)
		})
	}
}
