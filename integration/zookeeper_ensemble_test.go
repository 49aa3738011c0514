package integration

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/distsync/distsync/internal/testserver"
	"github.com/go-zookeeper/zk"
)

// zkHoldDetector records who holds a name, in this process, as the
// clients see it: from the moment an acquisition returns until the client
// gives the lease up (before Release) or sees its Done close. It counts an
// overlap whenever an acquisition returns while limit others hold and have
// not been told they lost: a holder must learn of its loss before anyone
// else's acquisition returns. With tokens, it also checks that tokens
// strictly increase in the order the acquisitions returned.
type zkHoldDetector struct {
	limit  int
	tokens bool

	mu        sync.Mutex
	holders   map[int]distsync.Lease
	last      uint64
	overlaps  int
	backwards int
	acquired  int
	firstErr  string
}

func newZKHoldDetector(limit int, tokens bool) *zkHoldDetector {
	return &zkHoldDetector{limit: limit, tokens: tokens, holders: map[int]distsync.Lease{}}
}

// enter records that client c's acquisition l returned.
func (d *zkHoldDetector) enter(c int, l distsync.Lease) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.acquired++
	live := 0
	for o, h := range d.holders {
		if o == c {
			continue
		}
		select {
		case <-h.Done():
		default:
			live++
		}
	}
	if live >= d.limit {
		d.overlaps++
		if d.firstErr == "" {
			d.firstErr = fmt.Sprintf("client %d acquired (token %d) while %d others held, none told of a loss", c, l.Token(), live)
		}
	}
	if d.tokens {
		if l.Token() <= d.last {
			d.backwards++
			if d.firstErr == "" {
				d.firstErr = fmt.Sprintf("client %d got token %d after token %d", c, l.Token(), d.last)
			}
		}
		d.last = max(d.last, l.Token())
	}
	d.holders[c] = l
}

// holding returns the clients that hold and were not told of a loss.
func (d *zkHoldDetector) holding() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	var cs []int
	for c, h := range d.holders {
		select {
		case <-h.Done():
		default:
			cs = append(cs, c)
		}
	}
	return cs
}

// leave records that client c gives its lease up.
func (d *zkHoldDetector) leave(c int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.holders, c)
}

// zkNoLease is a lease for the detector's control run, which takes no lock.
type zkNoLease struct {
	token uint64
	done  chan struct{}
}

func (l *zkNoLease) Token() uint64                     { return l.token }
func (l *zkNoLease) Done() <-chan struct{}             { return l.done }
func (l *zkNoLease) Err() error                        { return nil }
func (l *zkNoLease) Release(ctx context.Context) error { return nil }

// TestZooKeeperEnsembleContention runs 8 clients, each a session of its own
// on a 3-member ensemble (go-zookeeper given all three members; it picks
// one at random and moves on when it loses it), contending on one Mutex
// and one Semaphore of limit 2, while the leader is killed and restarted
// and a follower is partitioned from its peers and healed. No acquisition
// may return while another holder that was not told of a loss holds (the
// detector is shown to fire on clients that take no lock), every lease
// whose node went away unasked must have been told, and Mutex tokens
// strictly increase in the order acquisitions returned. `make test` runs
// two rounds of faults; DISTSYNC_SOAK runs rounds for that long.
func TestZooKeeperEnsembleContention(t *testing.T) {
	soak := soakDuration(t)
	ens, err := testserver.StartZooKeeperEnsemble(3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ens.Stop)

	// The control: the same detector on clients that take no lock must
	// see overlaps.
	control := newZKHoldDetector(1, false)
	var cwg sync.WaitGroup
	for c := range 8 {
		cwg.Go(func() {
			for range 20 {
				l := &zkNoLease{done: make(chan struct{})}
				control.enter(c, l)
				time.Sleep(time.Millisecond)
				control.leave(c)
			}
		})
	}
	cwg.Wait()
	if control.overlaps == 0 {
		t.Fatalf("control without a lock: detector saw no overlap in %d acquisitions", control.acquired)
	}
	t.Logf("control (no lock): %d overlaps in %d acquisitions", control.overlaps, control.acquired)

	const clients = 8
	sessions := make([]*zksync.Session, clients)
	for c := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		s, err := zksync.Dial(ctx, ens.Servers(), zksync.WithTTL(2*time.Second))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		sessions[c] = s
	}
	admin, _, err := zk.Connect(ens.Servers(), 3*time.Second, zk.WithLogInfo(false), zk.WithLogger(quietZK{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)

	name := t.Name()
	mutexD := newZKHoldDetector(1, true)
	semD := newZKHoldDetector(2, false)
	var (
		losses, unreported, failures atomic.Int64
		mu                           sync.Mutex
		unreportedMsg                []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		s := sessions[c]
		m, err := zkNewMutex(s, name+"-mutex")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		sem, err := zkNewSemaphore(ctx, s, name+"-sem", 2)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		type prim struct {
			d       *zkHoldDetector
			acquire func(context.Context) (distsync.Lease, error)
		}
		prims := []prim{{mutexD, m.Lock}, {semD, sem.Acquire}}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := prims[i%2]
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				l, err := p.acquire(ctx)
				cancel()
				if err != nil {
					failures.Add(1)
					if !errors.Is(err, distsync.ErrNotAcquired) && !errors.Is(err, distsync.ErrUnavailable) && !errors.Is(err, distsync.ErrLost) {
						t.Errorf("client %d: acquisition failed with an error outside the contract: %v", c, err)
					}
					continue
				}
				p.d.enter(c, l)
				hold := time.NewTimer(time.Duration(20+rng.IntN(40)) * time.Millisecond)
				lost := false
				select {
				case <-l.Done():
					lost = true
				case <-hold.C:
				}
				hold.Stop()
				if !lost {
					// Told nothing: the node must still be there, owned
					// by the lease's session (read from a quorum).
					zl := l.(interface {
						Path() string
						SessionID() int64
					})
					if _, serr := admin.Sync(zl.Path()); serr == nil {
						_, stat, gerr := admin.Get(zl.Path())
						gone := errors.Is(gerr, zk.ErrNoNode) || gerr == nil && stat.EphemeralOwner != zl.SessionID()
						if gone {
							select {
							case <-l.Done():
								lost = true
							case <-time.After(time.Second):
								unreported.Add(1)
								mu.Lock()
								unreportedMsg = append(unreportedMsg, fmt.Sprintf("client %d: node %s gone (%v), lease not told within 1s", c, zl.Path(), gerr))
								mu.Unlock()
							}
						}
					}
				}
				p.d.leave(c)
				if lost || l.Err() != nil {
					losses.Add(1)
					if !errors.Is(l.Err(), distsync.ErrLost) {
						t.Errorf("client %d: lease ended with %v, want ErrLost", c, l.Err())
					}
				}
				rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
				_ = l.Release(rctx)
				rcancel()
			}
		})
	}

	// The faults, each aimed at a moment when a client connected to the
	// member that goes holds: a killed leader's clients are disconnected
	// at once, and so are a partitioned follower's (it stops serving when
	// it loses the leader).
	holder := func(onMember int) bool {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			for _, c := range append(mutexD.holding(), semD.holding()...) {
				if onMember < 0 || sessions[c].Conn().Server() == ens.Addr(onMember) {
					return true
				}
			}
			time.Sleep(time.Millisecond)
		}
		return false
	}
	var leaderKills, partitions, rounds int
	deadline := time.Now().Add(soak)
	for {
		rounds++
		time.Sleep(time.Second)
		leader, err := ens.WaitLeader(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !holder(leader) {
			t.Logf("no holder on leader %d within 5 s; killing it anyway", leader)
		}
		ens.Kill(leader)
		leaderKills++
		next, err := ens.WaitLeader(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed leader %d, member %d leads", rounds, leader, next)
		time.Sleep(time.Second)
		if err := ens.Restart(leader); err != nil {
			t.Fatal(err)
		}
		if _, err := ens.WaitLeader(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // clients reconnect and contend again
		follower := -1
		for i := range ens.Size() {
			if ens.Mode(i) == "follower" {
				follower = i
				break
			}
		}
		if follower < 0 {
			t.Fatal("no follower to partition")
		}
		if !holder(follower) {
			t.Logf("no holder on follower %d within 5 s; partitioning it anyway", follower)
		}
		ens.Partition(follower)
		partitions++
		t.Logf("round %d: partitioned follower %d", rounds, follower)
		time.Sleep(2 * time.Second)
		ens.Heal(follower)
		if _, err := ens.WaitLeader(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		if rounds >= 2 && !time.Now().Before(deadline) {
			break
		}
	}
	time.Sleep(time.Second) // contention on a healed ensemble
	close(stop)
	wg.Wait()

	t.Logf("%d rounds: %d leader kills, %d follower partitions; Mutex: %d acquisitions, Semaphore(2): %d acquisitions; %d leases lost (all told), %d acquisitions failed (context or unavailable); %d overlaps, %d token inversions, %d unreported losses",
		rounds, leaderKills, partitions, mutexD.acquired, semD.acquired, losses.Load(), failures.Load(), mutexD.overlaps+semD.overlaps, mutexD.backwards, unreported.Load())
	for _, d := range []*zkHoldDetector{mutexD, semD} {
		if d.overlaps > 0 || d.backwards > 0 {
			t.Errorf("limit %d: %d overlaps, %d token inversions; first: %s", d.limit, d.overlaps, d.backwards, d.firstErr)
		}
	}
	if unreported.Load() > 0 {
		t.Errorf("%d losses not reported: %q", unreported.Load(), unreportedMsg)
	}
	if mutexD.acquired < 50 || semD.acquired < 50 {
		t.Errorf("too little contention to mean anything: %d Mutex and %d Semaphore acquisitions", mutexD.acquired, semD.acquired)
	}
	if losses.Load() == 0 {
		t.Errorf("no lease was lost: the faults did not reach a holder")
	}
}
