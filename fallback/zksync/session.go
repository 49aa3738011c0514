package zksync

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/telemetry"
	"github.com/go-zookeeper/zk"
)

// A Session is distsync on one ZooKeeper connection: it opens the Mutex,
// RWMutex, Semaphore and Election primitives, and every node they create is
// an ephemeral node of the connection's ZooKeeper session. It implements
// distsync.Session. A Session is safe for concurrent use.
//
// A Session lives until Close, across ZooKeeper sessions. The ZooKeeper
// session underneath may end: it expires, and go-zookeeper silently opens
// a new one, with a new ID. The leases taken under it then end with
// distsync.ErrLost, and so do the acquisitions waiting in it: their nodes
// are gone. The Session and its primitives go on with the new ZooKeeper
// session: the next call queues there.
//
// A disconnection is not the end of the session, but while disconnected the
// client cannot know whether the server still has it: ownership is
// uncertain. By default leases end as lost at once; WithDisconnectGrace
// keeps them through a short disconnection. Waiting acquisitions wait a
// disconnection out, and fail as above if the session did not survive it.
//
// Close ends the leases and the waiting acquisitions; later calls fail with
// distsync.ErrClosed.
type Session struct {
	conn  *zk.Conn
	connp atomic.Pointer[zk.Conn] // conn, for onEvent, which may run before Dial has it
	owned bool                    // Dial's: Close closes conn
	o     options

	connDone chan struct{} // Dial: closed when go-zookeeper has closed its events
	stopPoll chan struct{} // NewSession: stops the sampler
	pollDone chan struct{} // NewSession: closed when the sampler has returned

	mu        sync.Mutex
	zs        *zsession // the connection's session; nil while it has none
	cur       *epoch    // the epoch leases bind to; nil while there is none
	connected bool
	changed   chan struct{} // closed and replaced on every change of the above
	closed    bool
	denied    error            // the server refused the credentials (until the next session)
	granted   time.Duration    // the session timeout the server granted (Dial)
	grace     *time.Timer      // the disconnect grace running out
	raw       *zkConn          // the connection go-zookeeper dialed last (Dial)
	nodes     map[string]int64 // the nodes of ours that may exist: path → session ID

	bg        sync.WaitGroup // calls, lease followers, background removals
	closeOnce sync.Once

	// watches are the watch channels armed by waiters and observers, by
	// kind of watch and path, shared by those that wait for the same
	// change (see shareWatch).
	watchMu sync.Mutex
	watches map[string]<-chan zk.Event
}

var _ distsync.Session = (*Session)(nil)

func newSession(o options, owned bool) *Session {
	return &Session{o: o, owned: owned, changed: make(chan struct{}), nodes: map[string]int64{}}
}

// Dial connects to the ZooKeeper servers and returns a Session that owns the
// connection: Close closes it, and the server then deletes the session's
// nodes at once. Dial returns once the connection has a session, with the
// session timeout asked for (see WithTTL), and the credentials of WithAuth
// were accepted, or fails when ctx ends first. It fails with an error
// wrapping distsync.ErrInvalidConfig for bad options, distsync.ErrDenied for
// refused credentials, or distsync.ErrUnavailable (with ctx's error) when no
// session was established. On failure nothing is left running.
func Dial(ctx context.Context, servers []string, opts ...Option) (*Session, error) {
	o, err := newOptions(true, opts)
	if err != nil {
		return nil, err
	}
	if len(servers) == 0 {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "no ZooKeeper servers")
	}
	s := newSession(o, true)
	s.connDone = make(chan struct{})
	conn, events, err := zk.Connect(servers, o.ttl, zk.WithDialer(s.dial(o.dialer)),
		zk.WithLogger(zkLogger{o.logger}), zk.WithLogInfo(false), zk.WithEventCallback(s.onEvent))
	if err != nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, err, "connect")
	}
	s.conn = conn
	s.connp.Store(conn)
	go s.drain(events)
	// The first session may have come before connp was set, when onEvent
	// could not read its ID; its timeout is read once it is known.
	s.sample()
	fail := func(err error) (*Session, error) {
		s.Close()
		return nil, err
	}
	if _, err := s.epoch(ctx); err != nil {
		return fail(distsync.Errorf(distsync.ErrUnavailable, err, "no ZooKeeper session"))
	}
	s.mu.Lock()
	granted := s.granted
	s.mu.Unlock()
	if granted == 0 {
		granted, _ = negotiatedTimeout(conn) // the session came before onEvent had the connection
	}
	if granted != 0 && granted != o.ttl {
		return fail(distsync.Errorf(distsync.ErrInvalidConfig, nil, "TTL %v asked for, the ZooKeeper server granted %v (its minSessionTimeout and maxSessionTimeout bound it)", o.ttl, granted))
	}
	for _, c := range o.auth {
		if err := s.addAuth(ctx, c); err != nil {
			return fail(err)
		}
	}
	return s, nil
}

// addAuth sends c on the connection, once it has a session, bounded by ctx.
func (s *Session) addAuth(ctx context.Context, c credential) error {
	for {
		if _, err := s.reconnected(ctx, nil); err != nil {
			return distsync.Errorf(distsync.ErrUnavailable, err, "add %s credentials", c.scheme)
		}
		_, err := call(ctx, s, func() (struct{}, error) { return struct{}{}, s.conn.AddAuth(c.scheme, c.auth) }, nil)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return distsync.Errorf(distsync.ErrUnavailable, errors.Join(context.Cause(ctx), ignoreCtx(ctx, err)), "add %s credentials", c.scheme)
		case !connLost(err):
			return s.classify(ctx, err, distsync.ErrUnavailable, "add "+c.scheme+" credentials")
		}
	}
}

// NewSession returns a Session on conn, the caller's connection, which
// stays the caller's: Close ends the Session's leases (it deletes their
// nodes) but leaves conn open. NewSession waits, bounded by ctx, until conn
// has a session. It fails with an error wrapping distsync.ErrUnavailable
// (with ctx's error) if it gets none. It fails with
// distsync.ErrInvalidConfig for bad options, a nil conn, or a WithTTL
// other than the timeout conn negotiated.
//
// The caller must add its credentials (conn.AddAuth) before NewSession;
// go-zookeeper sends them again on every reconnection and new session.
// The caller must close the Session before conn. A Session whose conn was
// closed first sees a disconnection that never ends: its leases are lost,
// and its calls wait until their context ends. conn's event channel stays
// the caller's; the Session samples conn's state instead (every 10 ms, two
// atomic reads). Unlike Dial's, conn is not guarded against go-zookeeper's
// data race on reconnecting with watches (samuel/go-zookeeper#260), which
// the race detector may report.
func NewSession(ctx context.Context, conn *zk.Conn, opts ...Option) (*Session, error) {
	if conn == nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil *zk.Conn")
	}
	o, err := newOptions(false, opts)
	if err != nil {
		return nil, err
	}
	s := newSession(o, false)
	s.conn = conn
	s.connp.Store(conn)
	s.stopPoll, s.pollDone = make(chan struct{}), make(chan struct{})
	s.sample()
	go s.poll(s.stopPoll, s.pollDone)
	fail := func(err error) (*Session, error) {
		s.Close()
		return nil, err
	}
	if _, err := s.epoch(ctx); err != nil {
		return fail(distsync.Errorf(distsync.ErrUnavailable, err, "no ZooKeeper session on the connection"))
	}
	granted, ok := negotiatedTimeout(conn)
	switch {
	case !ok && o.ttl == 0:
		return fail(distsync.Errorf(distsync.ErrInvalidConfig, nil, "cannot read the connection's session timeout: give it with WithTTL"))
	case ok && o.ttl != 0 && granted != o.ttl:
		return fail(distsync.Errorf(distsync.ErrInvalidConfig, nil, "TTL %v given, the connection's session has %v", o.ttl, granted))
	case o.ttl == 0:
		s.o.ttl = granted
	}
	if s.o.grace > s.o.ttl/3 {
		return fail(distsync.Errorf(distsync.ErrInvalidConfig, nil, "disconnect grace %v, want 0 to a third of the session timeout %v", s.o.grace, s.o.ttl))
	}
	return s, nil
}

// TTL returns the ZooKeeper session timeout: the one the server granted.
func (s *Session) TTL() time.Duration { return s.o.ttl }

// Conn returns the go-zookeeper connection, for reads and for
// interoperation (such as a zk.Lock on a Mutex's Path). A Dial Session
// owns it: do not close it, close the Session.
func (s *Session) Conn() *zk.Conn { return s.conn }

// Prefix returns the root node under which the Session's primitives keep
// their nodes (WithPrefix; NodePath(s.Prefix(), name) is a name's node).
func (s *Session) Prefix() string { return s.o.root }

// Identity returns the holder identity the Session records in the data of
// its acquisition nodes (see WithIdentity).
func (s *Session) Identity() string { return s.o.id }

// SessionID returns the ID of the connection's ZooKeeper session, or 0
// while it has none.
func (s *Session) SessionID() int64 {
	sid, _, _, _ := s.state()
	return sid
}

// Mutex returns the Mutex called name, a *Mutex. It does no I/O. It fails
// with an error wrapping distsync.ErrInvalidName for a name that breaks
// distsync.ValidateName.
func (s *Session) Mutex(name string) (distsync.Mutex, error) {
	q, err := s.queue(name)
	if err != nil {
		return nil, err
	}
	return &Mutex{q: q, t: s.o.rec.Target(telemetry.Mutex, "", name)}, nil
}

// RWMutex returns the RWMutex called name, a *RWMutex, as Mutex does.
func (s *Session) RWMutex(name string) (distsync.RWMutex, error) {
	q, err := s.queue(name)
	if err != nil {
		return nil, err
	}
	return &RWMutex{q: q, r: s.o.rec.Target(telemetry.RWMutex, distsync.ModeRead, name),
		w: s.o.rec.Target(telemetry.RWMutex, distsync.ModeWrite, name)}, nil
}

// Election returns the Election called name, an *Election, as Mutex does.
func (s *Session) Election(name string) (distsync.Election, error) {
	q, err := s.queue(name)
	if err != nil {
		return nil, err
	}
	return &Election{q: q, t: s.o.rec.Target(telemetry.Election, "", name)}, nil
}

// Close ends the Session: its leases end as lost, the acquisitions waiting
// through it fail with distsync.ErrClosed, and later calls fail with
// distsync.ErrClosed. A Dial Session closes its connection, which ends the
// ZooKeeper session (the server deletes its nodes at once). A NewSession
// Session deletes its nodes itself, leaving the caller's connection open;
// on a connection that is down, go-zookeeper fails those requests within
// about a second, and the nodes stay until the connection's session ends.
// Close returns once no goroutine of the Session is left, and, for a Dial
// Session, none of its connection. It is idempotent.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.endEpochLocked(distsync.LossSessionEnded, "zookeeper session closed")
		if z := s.zs; z != nil {
			z.err = errors.New("zookeeper session closed")
			close(z.done)
			// The ZooKeeper session of a caller's connection lives on,
			// with our nodes: s.zs stays, for deleteNodes.
			if s.owned {
				s.zs = nil
			}
		}
		if s.grace != nil {
			s.grace.Stop()
		}
		s.broadcastLocked()
		s.mu.Unlock()
		if s.owned {
			s.conn.Close()
			// After the close request (or its 1s timeout): a handshake
			// still waiting for the server ends now.
			s.mu.Lock()
			raw := s.raw
			s.mu.Unlock()
			if raw != nil {
				raw.Close()
			}
			// go-zookeeper closes the event channel when its last
			// goroutine ends.
			<-s.connDone
			s.bg.Wait()
			return
		}
		close(s.stopPoll)
		<-s.pollDone
		s.bg.Wait()
		s.deleteNodes()
	})
	return nil
}

// dial wraps d to remember the connection go-zookeeper uses, so that Close
// can close it: go-zookeeper's own Close does not interrupt a connect
// handshake, which waits up to 20/3 session timeouts for a server that
// accepted the connection but does not answer. The connection is a zkConn,
// which orders go-zookeeper's re-arming of watches (see zkconn.go).
func (s *Session) dial(d zk.Dialer) zk.Dialer {
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		c, err := d(network, addr, timeout)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			c.Close()
			return nil, net.ErrClosed
		}
		s.raw = newZKConn(c)
		return s.raw, nil
	}
}

// queue returns the queue of name.
func (s *Session) queue(name string) (*queue, error) {
	p, err := NodePath(s.o.root, name)
	if err != nil {
		return nil, err
	}
	return &queue{s: s, name: name, path: p}, nil
}
