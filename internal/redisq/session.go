package redisq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/telemetry"
	"github.com/redis/go-redis/v9"
)

const (
	// DefaultTTL is the lease TTL when none is given.
	DefaultTTL = 10 * time.Second
	// MinTTL is the shortest TTL. A lease is reported lost TTL/5 before
	// Redis may expire it; that margin must absorb the server clock's
	// millisecond truncation, a late timer and a scheduling delay of the
	// process (tens of milliseconds on a busy machine), or a holder would
	// learn of its loss after the lock passed on. 100 ms leaves 20 ms.
	MinTTL = 100 * time.Millisecond
	// opTimeout bounds the requests that must not be cut off by the
	// caller's context (an enqueue whose outcome must be known, a cleanup).
	opTimeout = 5 * time.Second
)

// Client is what the Redis primitives need of a go-redis client: scripts
// (run through Do, see run) and one pub/sub connection. redis.UniversalClient (a *redis.Client,
// *redis.ClusterClient or a Sentinel failover client) satisfies it.
type Client interface {
	redis.Scripter
	Do(ctx context.Context, args ...any) *redis.Cmd
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
}

// Options are the settings of a Session.
type Options struct {
	// TTL is how long a holder's or waiter's state outlives its last
	// renewal on the server.
	TTL time.Duration
	// Replicas, when positive, is how many replicas must acknowledge (WAIT)
	// each acquisition and renewal within ReplicaTimeout.
	Replicas       int
	ReplicaTimeout time.Duration
	// Prefix starts every key and channel (see ValidatePrefix).
	Prefix string
	// Identity is recorded with every holder and waiter (see
	// distsync.ValidateIdentity).
	Identity string
	// Telemetry records the Session's logs and metrics; nil records
	// through the global MeterProvider and logs nothing.
	Telemetry *telemetry.Recorder
}

// Validate checks the options, with an error wrapping ErrInvalidConfig.
func (o Options) Validate() error {
	if err := ValidatePrefix(o.Prefix); err != nil {
		return err
	}
	if err := distsync.ValidateIdentity(o.Identity); err != nil {
		return err
	}
	switch {
	case o.TTL < MinTTL:
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "ttl %v below the minimum %v", o.TTL, MinTTL)
	case o.TTL%time.Millisecond != 0:
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "ttl %v is not whole milliseconds", o.TTL)
	case o.Replicas < 0:
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "negative replica count %d", o.Replicas)
	case o.Replicas > 0 && (o.ReplicaTimeout < time.Millisecond || o.ReplicaTimeout%time.Millisecond != 0):
		// WAIT's timeout 0 would block forever.
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "replica timeout %v is not a positive whole number of milliseconds", o.ReplicaTimeout)
	case o.Replicas > 0 && o.ReplicaTimeout >= o.TTL-o.TTL/5-o.TTL/3:
		// A renewal waits for the replicas; it must still come back
		// before the lease's deadline.
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "replica timeout %v leaves no room in ttl %v (keep it below ttl/2)", o.ReplicaTimeout, o.TTL)
	}
	return nil
}

// A Session is one client's identity and pub/sub connection: every
// holder and waiter of the session carries its id, and every waiter and
// observer of the session shares its one subscription connection.
type Session struct {
	c        Client
	id       string
	prefix   string
	identity string
	ttl      time.Duration
	hub      *hub
	n        atomic.Uint64
	rec      *telemetry.Recorder // never nil

	replicas       int           // WAIT for this many replicas (0: do not)
	replicaTimeout time.Duration // WAIT's timeout

	// The client gives up on a request at its context's deadline, so a
	// request may run on its caller's goroutine (see runInline).
	deadlines bool
	// The members whose acquire request went unanswered on the caller's
	// goroutine: that request may still run, so their deletion leaves a
	// record that refuses them (see abandon).
	unsure sync.Map

	mu     sync.Mutex
	closed bool
	leases map[*Lease]struct{}

	// Background cleanups (see Queue.abandon): how many run, closed when
	// they drop to none, whether new ones may start, and their context,
	// cancelled at the end of Close.
	bgN       int
	bgIdle    chan struct{}
	bgStopped bool
	bgCtx     context.Context
	bgCancel  context.CancelFunc
}

// NewSession loads the scripts and opens the session's pub/sub connection,
// bounded by ctx. It fails with ErrInvalidConfig (nil client, options out
// of range), ErrDenied (Redis refused the user, or cannot run scripts) or
// ErrUnavailable, leaving nothing behind.
func NewSession(ctx context.Context, c Client, o Options) (*Session, error) {
	if c == nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil redis client")
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := checkReplicas(c, o); err != nil {
		return nil, err
	}
	if _, err := call(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, loadScripts(ctx, c) }); err != nil {
		return nil, failure(err, "load scripts")
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	h, err := newHub(ctx, c, sessionChannel(o.Prefix, id), o.TTL)
	if err != nil {
		return nil, err
	}
	bgCtx, bgCancel := context.WithCancel(context.Background())
	rec := o.Telemetry
	if rec == nil {
		rec = telemetry.Nop("redis")
	}
	return &Session{
		c: c, id: id, prefix: o.Prefix, identity: o.Identity, ttl: o.TTL, hub: h, leases: map[*Lease]struct{}{}, rec: rec,
		replicas: o.Replicas, replicaTimeout: o.ReplicaTimeout, deadlines: honorsDeadlines(c),
		bgCtx: bgCtx, bgCancel: bgCancel,
	}, nil
}

// goBackground runs f in a goroutine that Close waits for (at most
// closeTimeout, then it cancels f's context). It reports false, running
// nothing, once Close has stopped waiting.
func (s *Session) goBackground(f func(ctx context.Context)) bool {
	if !s.enter() {
		return false
	}
	go func() {
		defer s.bgDone()
		f(s.bgCtx)
	}()
	return true
}

// enter counts an acquisition in progress as Close counts background
// cleanups: Close waits (at most closeTimeout) until it returned. A waiter
// woken by Close thus starts the deletion of its entry (see abandon)
// before Close stops waiting for cleanups; without that, Close could find
// no cleanup running yet, stop, and leave the entry to expire in a queue
// that nothing reclaims until the next script on the name. It reports
// false, counting nothing, once Close has stopped waiting; otherwise the
// caller must call bgDone when it returns.
func (s *Session) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bgStopped {
		return false
	}
	s.bgN++
	return true
}

func (s *Session) bgDone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bgN--
	if s.bgN == 0 && s.bgIdle != nil {
		close(s.bgIdle)
		s.bgIdle = nil
	}
}

// waitBackground waits until no background cleanup runs, or d passed.
func (s *Session) waitBackground(d time.Duration) {
	s.mu.Lock()
	if s.bgN == 0 {
		s.mu.Unlock()
		return
	}
	if s.bgIdle == nil {
		s.bgIdle = make(chan struct{})
	}
	idle := s.bgIdle
	s.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
}

// ID returns the session's random id, part of every member it writes.
func (s *Session) ID() string { return s.id }

// Prefix returns the prefix of the session's keys and channels.
func (s *Session) Prefix() string { return s.prefix }

// Identity returns the identity the session records with its members.
func (s *Session) Identity() string { return s.identity }

// Keys returns the keys of name under the session's prefix.
func (s *Session) Keys(name string) Keys { return KeysWith(s.prefix, name) }

// TTL returns the session's lease TTL.
func (s *Session) TTL() time.Duration { return s.ttl }

// Recorder returns the session's telemetry recorder.
func (s *Session) Recorder() *telemetry.Recorder { return s.rec }

// Client returns the session's client.
func (s *Session) Client() Client { return s.c }

// member returns a new member of kind and weight for this session (see
// common.lua).
func (s *Session) member(kind byte, weight int64) string {
	b := make([]byte, 0, 48)
	b = append(b, kind, '|')
	b = strconv.AppendInt(b, s.ttl.Milliseconds(), 10)
	b = append(b, '|')
	b = strconv.AppendInt(b, weight, 10)
	b = append(b, '|')
	b = append(b, s.id...)
	b = append(b, '|')
	b = strconv.AppendUint(b, s.n.Add(1), 10)
	return string(b)
}

func (s *Session) margin() time.Duration   { return s.ttl / 5 }
func (s *Session) interval() time.Duration { return s.ttl / 3 }

// track registers a new lease; it fails when the session is closed.
func (s *Session) track(l *Lease) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.leases[l] = struct{}{}
	return true
}

func (s *Session) untrack(l *Lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.leases, l)
}

// Closed reports whether Close was called.
func (s *Session) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close ends every lease of the session (their Err wraps ErrLost; their
// state is deleted, or expires if Redis does not answer),
// makes waiting calls return ErrClosed (their entries deleted before Close
// returns, or expiring if Redis does not answer), and closes the pub/sub
// connection.
// It does not close the client. It returns within about closeTimeout even
// when Redis does not answer, leaving no goroutine of the session behind
// (a request to an unresponsive server ends when the client gives up on
// it). It is idempotent.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	leases := make([]*Lease, 0, len(s.leases))
	for l := range s.leases {
		leases = append(leases, l)
	}
	s.mu.Unlock()
	deadline := time.Now().Add(closeTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	var wg sync.WaitGroup
	for _, l := range leases {
		wg.Go(func() {
			_ = l.shutdown(ctx, distsync.Lost(distsync.LossSessionEnded, nil, "%q: session closed", l.name))
		})
	}
	wg.Wait()
	cancel()
	s.hub.close(deadline)
	// Acquisitions woken by the close delete their entries, in the
	// background past CancelGrace: wait for both (see enter).
	s.waitBackground(time.Until(deadline))
	s.mu.Lock()
	s.bgStopped = true
	s.mu.Unlock()
	s.bgCancel()
	s.waitBackground(time.Hour) // they return at once when cancelled
	return nil
}
