package etcdq

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/telemetry"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/metadata"
)

// A Session is where a Queue gets the lease to put its keys on, one
// acquisition at a time. It has two kinds:
//
//   - a renewing Session (NewSession) grants its own leases and keeps
//     the current one alive. When it ends (expired, revoked, renewal not
//     confirmed in time), the next acquisition grants a new one, lazily.
//     Close revokes the current lease and ends everything of the Session.
//   - a fixed Session (Fixed) is a caller's *concurrency.Session. It is
//     never renewed: once it ended, acquisitions fail with ErrClosed.
type Session struct {
	c   *clientv3.Client
	ttl time.Duration // renewing: the TTL of every lease
	// ctx ends at Close (or when the client closes); every epoch, watch
	// and goroutine of the Session ends with it.
	ctx    context.Context
	cancel context.CancelFunc
	fixed  *epoch // the one lease of a fixed Session

	// Set by NewSession (Config), read-only afterwards.
	keyPrefix string // prepended to every key (WithPrefix)
	identity  string // recorded in holder keys' values; "" means the default
	rec       *telemetry.Recorder

	mu        sync.Mutex
	cur       *epoch        // renewing: the current lease, nil before the first grant
	granting  chan struct{} // closed when the grant in progress ends
	closed    bool
	closeErr  error
	semaphore map[string]bool // limit keys of the semaphores opened, for Close
	wg        sync.WaitGroup  // every goroutine of the Session, and its renewals (see renewer)
}

// An epoch is one lease of a Session and what lives on it: the keys of
// its acquisitions, their tombstones, and its renewals.
type epoch struct {
	src    *Session
	id     clientv3.LeaseID
	ctx    context.Context // ends when the lease ends (for us)
	cancel context.CancelFunc
	// leaderCtx is ctx with WithRequireLeader's metadata, made once: every
	// watch of the epoch derives from it rather than copying the metadata
	// (about 0.5 KiB a watch); see withRequireLeader.
	leaderCtx context.Context
	h         *health
	renew     *renewer // a renewing Session's renewals; nil for a fixed one

	mu       sync.Mutex
	orphaned bool // renewals stopped by a test, as in a paused process
	ended    bool
	late     map[*Lease]struct{} // leases whose follower has not started yet (see startLater)

	tmu     sync.Mutex     // guards the tombstones to delete (see forget)
	tdue    []dueTombstone // in order of due time
	timer   *time.Timer    // deletes the due tombstones
	tclosed bool           // the epoch ended: no more deletions
}

// CheckTTL reports whether ttl is a whole number of seconds, at least one:
// etcd leases have a granularity of one second.
func CheckTTL(ttl time.Duration) error {
	switch {
	case ttl < time.Second:
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "session TTL %v is below etcd's granularity of 1s", ttl)
	case ttl%time.Second != 0:
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "session TTL %v is not a whole number of seconds", ttl)
	}
	return nil
}

// Config is what a renewing Session's options set: the root prefix of
// every key, the identity its holder keys record ("" for
// distsync.DefaultIdentity()) and its telemetry recorder (nil: none).
type Config struct {
	Prefix   string
	Identity string
	Recorder *telemetry.Recorder
}

// NewSession returns a renewing Session on client c with leases of ttl,
// configured by cfg, and grants its first lease under ctx, so that a TTL
// the server does not grant as asked is reported now (ErrInvalidConfig).
// It fails with ErrInvalidConfig, ErrDenied, ErrClosed or ErrUnavailable;
// nothing is left behind then.
func NewSession(ctx context.Context, c *clientv3.Client, ttl time.Duration, cfg Config) (*Session, error) {
	if c == nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil etcd client")
	}
	if err := CheckTTL(ttl); err != nil {
		return nil, err
	}
	// Configured before the first grant, whose renewals read it.
	s := &Session{c: c, ttl: ttl, semaphore: map[string]bool{},
		keyPrefix: cfg.Prefix, identity: cfg.Identity, rec: cfg.Recorder}
	s.ctx, s.cancel = context.WithCancel(c.Ctx())
	e, err := s.grant(ctx)
	if err != nil {
		s.cancel()
		var g errGrant
		if errors.As(err, &g) {
			return nil, RPCError(ctx, c, g.err, "grant session lease")
		}
		return nil, err
	}
	s.cur = e
	return s, nil
}

// fixedSessions maps each caller's *concurrency.Session in use to its
// Session, so that the primitives on one session share its renewals and
// tombstones; an entry goes away when its session ends.
var fixedSessions sync.Map

// Fixed returns the fixed Session of a caller's session s. It does no I/O;
// for a session this package did not grant, the first acquisition waits
// until the lease's remaining TTL is known.
func Fixed(s *concurrency.Session) (*Session, error) {
	if s == nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil etcd session")
	}
	if src, ok := fixedSessions.Load(s); ok {
		return src.(*Session), nil
	}
	src := &Session{c: s.Client(), ctx: s.Ctx(), cancel: func() {}}
	e := src.newEpoch(s.Lease(), s.Ctx())
	src.fixed = e
	if prev, loaded := fixedSessions.LoadOrStore(s, src); loaded {
		e.cancel()
		return prev.(*Session), nil
	}
	context.AfterFunc(e.ctx, func() { fixedSessions.CompareAndDelete(s, src) })
	e.followFixed(s)
	return src, nil
}

func (s *Session) newEpoch(id clientv3.LeaseID, parent context.Context) *epoch {
	e := &epoch{src: s, id: id, h: newHealth()}
	e.ctx, e.cancel = context.WithCancel(parent)
	e.leaderCtx = withRequireLeader(e.ctx)
	return e
}

// requireLeader carries WithRequireLeader's metadata, made once.
var requireLeader = clientv3.WithRequireLeader(context.Background())

// withRequireLeader is clientv3.WithRequireLeader(ctx) for an epoch's
// context, without a metadata map per epoch (about 0.5 KiB): the values of
// ctx, then requireLeader's outgoing metadata. A ctx that carries outgoing
// metadata of its own (a client whose Config.Context has some) gets
// WithRequireLeader's copy, merged.
func withRequireLeader(ctx context.Context) context.Context {
	if _, ok := metadata.FromOutgoingContext(ctx); ok {
		return clientv3.WithRequireLeader(ctx)
	}
	return leaderCtx{ctx}
}

// A leaderCtx is its Context with requireLeader's values where it has none.
// Its Done is its Context's, so contexts derived from it are cancelled
// with it as if derived from the Context itself (no goroutine).
type leaderCtx struct{ context.Context }

// Value returns the Context's value for key, or else requireLeader's.
func (c leaderCtx) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return requireLeader.Value(key)
}

// nopRecorder records a fixed Session's telemetry: the global
// MeterProvider's instruments, no logs.
var nopRecorder = sync.OnceValue(func() *telemetry.Recorder { return telemetry.Nop("etcd") })

// Recorder returns the Session's telemetry recorder.
func (s *Session) Recorder() *telemetry.Recorder {
	if s.rec == nil {
		return nopRecorder()
	}
	return s.rec
}

// Identity returns the holder identity the Session records.
func (s *Session) Identity() string {
	if s.identity == "" {
		return distsync.DefaultIdentity()
	}
	return s.identity
}

// Client returns the Session's etcd client.
func (s *Session) Client() *clientv3.Client { return s.c }

// IsFixed reports whether s is a caller's session, never renewed.
func (s *Session) IsFixed() bool { return s.fixed != nil }

// Context returns a context that ends when the Session is closed or its
// client is (for a fixed Session: when its client is closed); observers
// end with it.
func (s *Session) Context() context.Context {
	if s.fixed != nil {
		return s.c.Ctx()
	}
	return s.ctx
}

// Closed reports whether Close was called.
func (s *Session) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// errClosed returns the error of a call after Close.
func errClosed() error { return distsync.Errorf(distsync.ErrClosed, nil, "etcd session closed") }

// Go runs f in a goroutine that Close waits for, and reports false (without
// running f) once the Session is closed.
func (s *Session) Go(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// epoch returns the lease to acquire under: for a renewing Session the
// current one, or a new one granted under ctx when the current one ended
// or can no longer be trusted (one grant at a time; other callers wait for
// it). For a fixed Session, its lease, or ErrClosed once it ended.
func (s *Session) epoch(ctx context.Context) (*epoch, error) {
	if e := s.fixed; e != nil {
		if e.ctx.Err() != nil {
			return nil, distsync.Errorf(distsync.ErrClosed, nil, "etcd session ended")
		}
		if ctx.Err() != nil {
			return nil, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "")
		}
		if err := e.h.ready(ctx); err != nil {
			return nil, err
		}
		return e, nil
	}
	for {
		if ctx.Err() != nil {
			return nil, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "")
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, errClosed()
		}
		cur := s.cur
		if cur != nil && cur.ctx.Err() == nil && cur.h.check(time.Now()) == nil {
			s.mu.Unlock()
			return cur, nil
		}
		if wait := s.granting; wait != nil {
			s.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "waiting for a new session lease")
			}
		}
		done := make(chan struct{})
		s.granting = done
		s.mu.Unlock()
		if cur != nil {
			cur.finish(distsync.Lost(distsync.LossRenewal, nil, "session lease renewal not confirmed in time"), true)
		}
		e, err := s.grant(ctx)
		s.mu.Lock()
		s.granting = nil
		close(done)
		if err == nil && s.closed {
			s.mu.Unlock()
			e.finish(errClosed(), true)
			return nil, errClosed()
		}
		if err == nil {
			s.cur = e
		}
		s.mu.Unlock()
		if err != nil {
			var g errGrant
			switch {
			case !errors.As(err, &g):
				return nil, err
			case s.Closed():
				return nil, errClosed()
			}
			return nil, s.acquireErr(ctx, g.err, "grant session lease")
		}
		return e, nil
	}
}

// acquireErr is fail for an acquisition that has no queue yet.
func (s *Session) acquireErr(ctx context.Context, err error, op string) error {
	q := Queue{src: s}
	return q.fail(ctx, err, op)
}

// errGrant marks the raw error of a grant (wrapped once, for epoch to
// unwrap and classify).
type errGrant struct{ err error }

func (e errGrant) Error() string { return e.err.Error() }
func (e errGrant) Unwrap() error { return e.err }

// grant grants a lease of the Session's TTL under ctx (ended early by
// Close) and starts renewing it. A server that grants another TTL than
// asked is misconfiguration: ErrInvalidConfig, naming both. Any other
// failure is returned as an errGrant around the client's error.
func (s *Session) grant(ctx context.Context) (*epoch, error) {
	ctx, stop := mergeDone(ctx, s.ctx)
	defer stop()
	secs := int64(s.ttl / time.Second)
	sent := time.Now()
	resp, err := s.c.Grant(ctx, secs)
	if err != nil {
		return nil, errGrant{err}
	}
	if resp.TTL != secs {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		_, _ = s.c.Revoke(rctx, resp.ID)
		cancel()
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "asked for a %v session lease, the server granted %ds", s.ttl, resp.TTL)
	}
	e := s.newEpoch(resp.ID, s.ctx)
	// The lease lives at least a TTL past the grant request's sending.
	e.h.set(sent.Add(s.ttl-margin(s.ttl)), s.ttl, false)
	if !e.startRenewals(sent) {
		e.finish(errClosed(), false)
		ctx, cancel := context.WithTimeout(s.c.Ctx(), closeTimeout)
		_, _ = s.c.Revoke(ctx, e.id)
		cancel()
		return nil, errClosed()
	}
	return e, nil
}

// isLeaseGone reports whether err says the lease no longer exists.
func isLeaseGone(err error) bool { return errors.Is(err, rpctypes.ErrLeaseNotFound) }

// mergeDone returns ctx, also cancelled when other ends.
func mergeDone(ctx, other context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(other, cancel)
	return ctx, func() { stop(); cancel() }
}

// closeTimeout bounds Close's revocation of the current lease (and any
// revocation of a lease given up): past it, the lease expires after its
// TTL instead.
const closeTimeout = time.Second

// endErr returns why the epoch ended, for its leases.
func (e *epoch) endErr() error {
	if _, _, err := e.h.state(); err != nil {
		return err
	}
	return distsync.Lost(distsync.LossSessionEnded, nil, "etcd session ended")
}

// waitErr returns the error of an acquisition whose epoch ended while it
// waited: ErrClosed after Close, else ErrLost (the next call uses a new
// lease).
func (e *epoch) waitErr() error {
	if e.src.Closed() {
		return distsync.Errorf(distsync.ErrClosed, nil, "etcd session closed while waiting")
	}
	return distsync.Lost(distsync.LossSessionEnded, nil, "etcd session ended while waiting")
}

// closedErr returns ErrClosed for a waiter that lost its key to Close's
// revocation, else err.
func (s *Session) closedErr(err error) error {
	if errors.Is(err, distsync.ErrLost) && s.Closed() {
		return distsync.Errorf(distsync.ErrClosed, nil, "etcd session closed while waiting")
	}
	return err
}

func (e *epoch) isOrphaned() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.orphaned
}

// finish ends the epoch, once: its health reports err (its leases and
// waiters end), its watches and requests end, and its tombstones are no
// longer deleted (they end with the lease). With revoke, the lease is
// revoked in the background (bounded by closeTimeout), so that the keys of
// lost leases do not wait for the expiry.
func (e *epoch) finish(err error, revoke bool) {
	e.mu.Lock()
	if e.ended {
		e.mu.Unlock()
		return
	}
	e.ended = true
	revoke = revoke && !e.orphaned && e.src.fixed == nil
	late := e.late
	e.late = nil
	e.mu.Unlock()
	e.h.end(err)
	e.cancel()
	e.renew.stop()
	// The leases with no follower yet end here, before finish returns,
	// as those with one end when it sees the context end.
	for l := range late {
		l.endUnstarted()
	}
	e.stopForgetting()
	if revoke {
		e.src.revokeLater(e.id)
	}
}

// revokeLater revokes lease id in the background, bounded by closeTimeout.
func (s *Session) revokeLater(id clientv3.LeaseID) {
	s.Go(func() {
		ctx, cancel := context.WithTimeout(s.c.Ctx(), closeTimeout)
		defer cancel()
		_, _ = s.c.Revoke(ctx, id)
	})
}

// Close ends a renewing Session: later calls fail with ErrClosed, the
// current lease is revoked (waiting at most closeTimeout for etcd; the
// lease expires otherwise), which ends every lease and waiter under it,
// the limits of the semaphores it left idle are deleted, and Close waits
// for every goroutine of the Session. It is idempotent: later calls return
// the first one's result. A fixed Session has nothing to close.
func (s *Session) Close() error {
	if s.fixed != nil {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return s.closeErr
	}
	s.closed = true
	cur, granting := s.cur, s.granting
	limits := make([]string, 0, len(s.semaphore))
	for k := range s.semaphore {
		limits = append(limits, k)
	}
	s.mu.Unlock()
	if granting != nil {
		s.cancel() // a grant in progress gives up; what it got is revoked
		<-granting
	}
	var err error
	if cur != nil && s.c.Ctx().Err() == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.c.Ctx()), closeTimeout)
		cur.mu.Lock()
		alive := !cur.ended
		cur.mu.Unlock()
		// The leases and waiters end first, as closed, then the keys go
		// with the lease.
		cur.finish(distsync.Lost(distsync.LossSessionEnded, nil, "etcd session closed"), false)
		if alive {
			if _, rerr := s.c.Revoke(ctx, cur.id); rerr != nil && !isLeaseGone(rerr) {
				err = distsync.Errorf(distsync.ErrUnavailable, rerr, "revoke session lease; it expires after its TTL")
			}
		}
		if err == nil {
			deleteIdleLimits(ctx, s.c, limits)
		}
		cancel()
	}
	if cur != nil {
		cur.finish(distsync.Lost(distsync.LossSessionEnded, nil, "etcd session closed"), false)
	}
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	s.closeErr = err
	s.mu.Unlock()
	return err
}

// CurrentLease returns the lease the next acquisition would use, granting
// one under ctx if needed. Tests use it to end a Session from outside.
func (s *Session) CurrentLease(ctx context.Context) (clientv3.LeaseID, error) {
	e, err := s.epoch(ctx)
	if err != nil {
		return 0, err
	}
	return e.id, nil
}

// Orphan stops renewing the current lease without revoking it, as a
// paused process would: its leases are lost at their renewal deadline,
// etcd expires it after its TTL, and the next acquisition grants a new
// lease. For tests.
func (s *Session) Orphan() {
	s.mu.Lock()
	e := s.cur
	if s.fixed != nil {
		e = s.fixed
	}
	s.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		e.orphaned = true
		e.mu.Unlock()
	}
}

// addLate records l, whose follower starts later, to be ended by finish;
// it returns false once the epoch has ended.
func (e *epoch) addLate(l *Lease) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended {
		return false
	}
	if e.late == nil {
		e.late = map[*Lease]struct{}{}
	}
	e.late[l] = struct{}{}
	return true
}

// dropLate forgets l: its follower started, or it was released.
func (e *epoch) dropLate(l *Lease) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.late, l)
}
