package zksync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/go-zookeeper/zk"
)

// DefaultSessionTimeout is the session timeout Dial asks for when
// WithSessionTimeout is not given.
const DefaultSessionTimeout = 10 * time.Second

// DefaultRoot is the node under which names live when WithRoot is not given.
const DefaultRoot = "/distsync"

// A Session is one ZooKeeper connection and its session, shared by any number
// of primitives. Every node a primitive creates is an ephemeral node of this
// session: ZooKeeper deletes it when the session ends.
//
// The session decides when the leases taken through it end. An expired
// session always ends them, and so does go-zookeeper opening a new session
// after an expiry (it does so silently, with a new session ID). By default a
// mere disconnection ends them too: while disconnected, the client cannot
// know whether the server still has the session, so ownership is uncertain.
// WithDisconnectGrace keeps leases through a short disconnection instead.
//
// A Session is safe for concurrent use. Close it when done: that ends the
// session on the server, which deletes its nodes at once.
type Session struct {
	conn     *zk.Conn
	events   <-chan zk.Event
	connDone chan struct{} // closed when go-zookeeper has closed events
	o        options

	mu        sync.Mutex
	cur       *epoch        // the epoch leases bind to; nil while there is none
	sid       int64         // the ZooKeeper session ID of the connection
	connected bool          // the connection has a session now
	changed   chan struct{} // closed and replaced on every change of the above
	closed    bool
	grace     *time.Timer
	raw       net.Conn // the connection go-zookeeper dialed last

	bg        sync.WaitGroup // calls, lease followers, background removals
	closeOnce sync.Once

	// watches are the watch channels armed by waiters and observers, by
	// kind of watch and path, shared by those that wait for the same
	// change (see shareWatch).
	watchMu sync.Mutex
	watches map[string]<-chan zk.Event
}

// An epoch is a span during which leases taken through a session hold. It
// ends on expiry, on a new session ID, on Close, and, without a disconnect
// grace, on a disconnection (with a grace, when the grace runs out).
type epoch struct {
	sid  int64
	done chan struct{}
	err  error // why it ended, set before done is closed
}

// ended returns a channel closed when e ends; nil (never ready) for a nil
// e.
func (e *epoch) ended() <-chan struct{} {
	if e == nil {
		return nil
	}
	return e.done
}

// over reports whether e has ended; false for a nil e.
func (e *epoch) over() bool {
	select {
	case <-e.ended():
		return true
	default:
		return false
	}
}

type options struct {
	timeout time.Duration
	grace   time.Duration
	root    string
	acl     []zk.ACL
	logger  zk.Logger
	dialer  zk.Dialer
}

// An Option configures Dial.
type Option func(*options)

// WithSessionTimeout sets the session timeout Dial asks the server for
// (default DefaultSessionTimeout). The server clamps it to its
// minSessionTimeout and maxSessionTimeout (by default 2 and 20 ticks). A
// holder that crashes keeps its leases for about this long.
func WithSessionTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithDisconnectGrace keeps leases through a disconnection of up to d, if the
// client reconnects within d to the same session; a longer disconnection ends
// them as lost. The default, 0, ends leases as soon as the connection drops.
// d may be at most a third of the session timeout: go-zookeeper notices a
// silent server only after two thirds of it, so the server may have expired
// the session a third of it after the client learns of the disconnection.
// The server may also grant a session timeout shorter than asked for; the
// grace is checked against the one asked for.
func WithDisconnectGrace(d time.Duration) Option { return func(o *options) { o.grace = d } }

// WithRoot sets the node under which each name gets its node (default
// DefaultRoot). It must be an absolute ZooKeeper path other than "/".
func WithRoot(path string) Option { return func(o *options) { o.root = path } }

// WithACL sets the ACL of the nodes the session creates (default
// zk.WorldACL(zk.PermAll)).
func WithACL(acl []zk.ACL) Option { return func(o *options) { o.acl = acl } }

// WithLogger sets go-zookeeper's logger. By default it logs nothing (its own
// default logs every connection attempt).
func WithLogger(l zk.Logger) Option { return func(o *options) { o.logger = l } }

// WithDialer sets how go-zookeeper dials a server (default net.DialTimeout),
// for a proxy or a tunnel.
func WithDialer(d zk.Dialer) Option { return func(o *options) { o.dialer = d } }

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func (o options) validate() error {
	switch {
	case o.timeout <= 0 || o.timeout%time.Millisecond != 0:
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "session timeout %v, want a positive whole number of milliseconds", o.timeout)
	case o.grace < 0 || o.grace > o.timeout/3:
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "disconnect grace %v, want 0 to a third of the session timeout %v", o.grace, o.timeout)
	case o.dialer == nil:
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil dialer")
	case len(o.acl) == 0:
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "empty ACL")
	}
	return validRoot(o.root)
}

func validRoot(root string) error {
	if root == "" || root[0] != '/' || root == "/" || strings.HasSuffix(root, "/") || strings.Contains(root, "//") {
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "root %q, want an absolute path like %q", root, DefaultRoot)
	}
	for _, seg := range strings.Split(root[1:], "/") {
		if seg == "." || seg == ".." || encodeName(seg) != seg {
			return distsync.Errorf(distsync.ErrInvalidConfig, nil, "root %q has a segment ZooKeeper cannot store: %q", root, seg)
		}
	}
	return nil
}

// Dial connects to the ZooKeeper servers and returns once the connection
// has a session, or fails when ctx ends first. It fails with
// distsync.ErrInvalidConfig for bad options, or distsync.ErrUnavailable
// (wrapping ctx.Err()) when no session was established; nothing is left
// running then.
func Dial(ctx context.Context, servers []string, opts ...Option) (*Session, error) {
	o := options{timeout: DefaultSessionTimeout, root: DefaultRoot, acl: zk.WorldACL(zk.PermAll), logger: quietLogger{}, dialer: net.DialTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if len(servers) == 0 {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "no ZooKeeper servers")
	}
	s := &Session{o: o, changed: make(chan struct{}), connDone: make(chan struct{})}
	conn, events, err := zk.Connect(servers, o.timeout, zk.WithDialer(s.dial(o.dialer)),
		zk.WithLogger(o.logger), zk.WithLogInfo(false), zk.WithEventCallback(s.onEvent))
	if err != nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, err, "connect")
	}
	s.mu.Lock()
	s.conn, s.events = conn, events
	s.mu.Unlock()
	go s.drain(events)
	// The first session may have come before s.conn was set, when the
	// callback could not read its ID.
	if conn.State() == zk.StateHasSession {
		s.onEvent(zk.Event{Type: zk.EventSession, State: zk.StateHasSession})
	}
	if _, err := s.epoch(ctx); err != nil {
		s.Close()
		return nil, distsync.Errorf(distsync.ErrUnavailable, err, "no ZooKeeper session")
	}
	return s, nil
}

// Conn returns the underlying go-zookeeper connection, for reads and for
// interoperation (such as a zk.Lock on a Mutex's Path). Closing it ends the
// Session's leases and closes the Session.
func (s *Session) Conn() *zk.Conn { return s.conn }

// dial wraps d to remember the connection go-zookeeper uses, so that Close
// can close it: go-zookeeper's own Close does not interrupt a connect
// handshake, which waits up to 20/3 session timeouts for a server that
// accepted the connection but does not answer.
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
		s.raw = c
		return c, nil
	}
}

// drain consumes the connection's events until go-zookeeper closes the
// channel, which it does when the connection has ended for good (Close,
// or a caller closing Conn): the Session is closed then, so that nothing
// waits for a reconnection that cannot come.
func (s *Session) drain(events <-chan zk.Event) {
	for range events {
	}
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.endLocked("zookeeper connection closed")
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()
	close(s.connDone)
}

// SessionID returns the current ZooKeeper session ID (0 before the first).
func (s *Session) SessionID() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sid
}

// onEvent follows the connection's session events. go-zookeeper calls it
// from its own goroutines, so it must not block.
func (s *Session) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.conn == nil && ev.State != zk.StateHasSession {
		return
	}
	switch ev.State {
	case zk.StateHasSession:
		var id int64
		if s.conn != nil {
			id = s.conn.SessionID()
		}
		if id == 0 {
			return
		}
		if s.sid != 0 && id != s.sid {
			s.endLocked(fmt.Sprintf("session 0x%x expired: the client opened session 0x%x", s.sid, id))
		}
		if s.grace != nil {
			s.grace.Stop()
			s.grace = nil
		}
		s.sid, s.connected = id, true
		if s.cur == nil {
			s.cur = &epoch{sid: id, done: make(chan struct{})}
		}
	case zk.StateDisconnected:
		if !s.connected {
			return
		}
		s.connected = false
		if s.o.grace == 0 {
			s.endLocked(fmt.Sprintf("disconnected from ZooKeeper (session 0x%x): ownership uncertain", s.sid))
		} else if s.grace == nil && s.cur != nil {
			e := s.cur
			s.grace = time.AfterFunc(s.o.grace, func() {
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.cur == e && !s.connected {
					s.endLocked(fmt.Sprintf("disconnected from ZooKeeper (session 0x%x) for longer than %v: ownership uncertain", e.sid, s.o.grace))
				}
			})
		}
	case zk.StateExpired:
		s.connected = false
		s.endLocked(fmt.Sprintf("session 0x%x expired", s.sid))
	default:
		return
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// endLocked ends the current epoch, if any, as lost with msg.
func (s *Session) endLocked(msg string) {
	if e := s.cur; e != nil {
		e.err = distsync.Errorf(distsync.ErrLost, nil, "%s", msg)
		close(e.done)
		s.cur = nil
	}
}

// epoch waits until the session has a live epoch and returns it. It fails
// with an error wrapping ErrClosed, or ctx's error.
func (s *Session) epoch(ctx context.Context) (*epoch, error) {
	for {
		s.mu.Lock()
		e, closed, changed := s.cur, s.closed, s.changed
		s.mu.Unlock()
		switch {
		case closed:
			return nil, distsync.Errorf(distsync.ErrClosed, nil, "zookeeper session closed")
		case e != nil:
			return e, nil
		}
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-changed:
		}
	}
}

// current returns the live epoch, or nil.
func (s *Session) current() *epoch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// sessionID returns the ID of the session the connection has now, and the
// channel closed at the next change, and whether the Session is closed.
func (s *Session) state() (sid int64, connected bool, changed <-chan struct{}, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sid, s.connected, s.changed, s.closed
}

// Close ends the session: every lease taken through it ends as lost, the
// server deletes the session's nodes, and Close returns once no goroutine of
// the Session or its connection is left. It is idempotent.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.endLocked("zookeeper session closed")
		if s.grace != nil {
			s.grace.Stop()
		}
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
		s.conn.Close()
		// After the close request (or its 1s timeout): a handshake still
		// waiting for the server ends now.
		s.mu.Lock()
		raw := s.raw
		s.mu.Unlock()
		if raw != nil {
			raw.Close()
		}
		// go-zookeeper closes the event channel when its last goroutine
		// ends.
		<-s.connDone
		s.bg.Wait()
	})
	return nil
}

// call runs f, a blocking go-zookeeper call, bounded by ctx. go-zookeeper
// calls take no context, so f runs in a goroutine the Session tracks. If ctx
// has ended before the call, f is not run. If ctx ends while f is in
// flight, call waits for f's answer until the grace deadline of ctx (see
// graceDeadline): a server that answers leaves nothing running, and the
// answer is returned as f gave it, so the caller can undo what f did (the
// caller checks ctx.Err()). Past the grace, call returns ctx's error; the
// goroutine runs on until the server answers or the connection fails
// (go-zookeeper fails every pending request when it gets no answer within
// two thirds of the session timeout), and hands the answer to abandon, if
// not nil, so that what f created is removed in the background. A ctx
// ended by its epoch (see follow) gets no grace.
func call[T any](ctx context.Context, s *Session, f func() (T, error), abandon func(T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, context.Cause(ctx)
	}
	if ctx.Done() == nil {
		return f()
	}
	type result struct {
		v   T
		err error
	}
	if !s.goTracked() {
		return zero, distsync.Errorf(distsync.ErrClosed, nil, "zookeeper session closed")
	}
	var (
		mu   sync.Mutex
		left bool // the caller gave up waiting: the answer goes to abandon
	)
	res := make(chan result, 1)
	go func() {
		defer s.bg.Done()
		v, err := f()
		mu.Lock()
		gone := left
		if !gone {
			res <- result{v, err}
		}
		mu.Unlock()
		if gone && abandon != nil {
			abandon(v, err)
		}
	}()
	select {
	case r := <-res:
		return r.v, r.err
	case <-ctx.Done():
	}
	// A request that follows an epoch which ended (see follow) has no
	// grace: what it did goes with the session or is undone in the
	// background.
	var wait time.Duration
	if context.Cause(ctx) != errSessionChanged {
		wait = time.Until(graceDeadline(ctx))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-res:
		return r.v, r.err
	case <-t.C:
	}
	mu.Lock()
	left = true
	mu.Unlock()
	// The answer may have come just now; else the goroutine hands it to
	// abandon.
	select {
	case r := <-res:
		if abandon != nil {
			abandon(r.v, r.err)
		}
	default:
	}
	return zero, context.Cause(ctx)
}

// graceKey is the context key of an acquisition's *grace.
type graceKey struct{}

// A grace is the end of an acquisition's cleanup after its context ended:
// distsync.CancelGrace after the first moment the end was seen. Every step
// of one acquisition shares it, so the whole acquire call returns within
// CancelGrace of its context's end.
type grace struct {
	once sync.Once
	at   time.Time
}

// withGrace gives ctx a grace of its own, for one acquisition.
func withGrace(ctx context.Context) context.Context {
	return context.WithValue(ctx, graceKey{}, &grace{})
}

// graceDeadline returns when the cleanup after ctx's end must stop waiting
// for ZooKeeper: distsync.CancelGrace after the end was first seen in this
// acquisition, or from now for a context without a grace.
func graceDeadline(ctx context.Context) time.Time {
	g, _ := ctx.Value(graceKey{}).(*grace)
	if g == nil {
		return time.Now().Add(distsync.CancelGrace)
	}
	g.once.Do(func() { g.at = time.Now().Add(distsync.CancelGrace) })
	return g.at
}

// cleanupContext returns the context in which to undo what a call did: ctx
// while it lasts (call waits out the grace if it ends meanwhile), or, once
// ctx has ended, a context that ends at ctx's grace deadline.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil {
		return ctx, func() {}
	}
	return context.WithDeadline(context.WithoutCancel(ctx), graceDeadline(ctx))
}

// watchShared reports whether the node at path exists and, if it does,
// returns a channel that receives or is closed at its next change (see
// shareWatch). Waiters for the same node share one watch.
func (s *Session) watchShared(ctx context.Context, path string) (bool, *zk.Stat, <-chan zk.Event, error) {
	r, ch, err := s.getShared(ctx, path)
	return r.ok, r.stat, ch, err
}

// nodeRead is what getShared read of a node.
type nodeRead struct {
	ok   bool // the node exists
	data []byte
	stat *zk.Stat
}

// getShared reads the node at path and, if it exists, returns a channel
// that receives or is closed at its deletion or the next change of its
// data (see shareWatch). A missing node gets no watch: GetW, unlike
// ExistsW, leaves no watch for its creation.
func (s *Session) getShared(ctx context.Context, path string) (nodeRead, <-chan zk.Event, error) {
	return shareWatch(ctx, s, "data "+path, func() (nodeRead, <-chan zk.Event, error) {
		data, stat, ch, err := s.conn.GetW(path)
		if errors.Is(err, zk.ErrNoNode) {
			return nodeRead{}, nil, nil
		}
		return nodeRead{true, data, stat}, ch, err
	}, func() (nodeRead, error) {
		data, stat, err := s.conn.Get(path)
		if errors.Is(err, zk.ErrNoNode) {
			return nodeRead{}, nil
		}
		return nodeRead{true, data, stat}, err
	})
}

// childrenShared lists the children of the node at path and returns a
// channel that receives or is closed at the next change of the list or the
// node's deletion (see shareWatch). A missing node fails with
// zk.ErrNoNode and gets no watch.
func (s *Session) childrenShared(ctx context.Context, path string) ([]string, <-chan zk.Event, error) {
	return shareWatch(ctx, s, "children "+path, func() ([]string, <-chan zk.Event, error) {
		children, _, ch, err := s.conn.ChildrenW(path)
		return children, ch, err
	}, func() ([]string, error) {
		children, _, err := s.conn.Children(path)
		return children, err
	})
}

// shareWatch reads with watched, which sets a watch, or, while a watch
// that key names has been set and has not fired, with plain and returns
// that watch's channel. Callers that wait for the same change (waiters for
// one node, observers of one election) thus share one go-zookeeper watch:
// go-zookeeper keeps every watch's channel until the watch fires, and
// ZooKeeper has no request to remove a watch, so a watch per wait would
// pile up, one per cancelled wait, on a node that does not change for
// long. A receiver must treat any receive, even from a closed channel, as
// "it changed".
//
// Sharing is safe: a watch that was armed and has not fired yet fires at
// the next change, and the plain read that comes after the check sees any
// change before it.
func shareWatch[T any](ctx context.Context, s *Session, key string, watched func() (T, <-chan zk.Event, error), plain func() (T, error)) (T, <-chan zk.Event, error) {
	s.watchMu.Lock()
	ch := s.watches[key]
	s.watchMu.Unlock()
	if ch != nil && !fired(ch) {
		v, err := call(ctx, s, plain, nil)
		return v, ch, err
	}
	type res struct {
		v  T
		ch <-chan zk.Event
	}
	r, err := call(ctx, s, func() (res, error) {
		v, ch, err := watched()
		return res{v, ch}, err
	}, nil)
	if err == nil && r.ch != nil {
		s.watchMu.Lock()
		if s.watches == nil {
			s.watches = map[string]<-chan zk.Event{}
		}
		if len(s.watches) >= 16 {
			for k, c := range s.watches {
				if fired(c) {
					delete(s.watches, k)
				}
			}
		}
		s.watches[key] = r.ch
		s.watchMu.Unlock()
	}
	return r.v, r.ch, err
}

// fired reports whether a watch channel has received its event (which it
// consumes; other receivers then see the channel closed).
func fired(ch <-chan zk.Event) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// goTracked adds a goroutine to the Session's WaitGroup unless it is closed.
func (s *Session) goTracked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.bg.Add(1)
	return true
}

// removeLater deletes path in the background, once the connection has the
// session sid again, retrying until the node is gone, the session has
// ended (taking its ephemeral nodes with it), or the Session is closed.
func (s *Session) removeLater(path string, sid int64) {
	s.cleanupLater(sid, func() error {
		err := s.conn.Delete(path, -1)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		return err
	})
}

// cleanupLater runs op in the background until it succeeds while the
// connection has session sid; see removeLater.
func (s *Session) cleanupLater(sid int64, op func() error) {
	if !s.goTracked() {
		return // Close ends the session and its nodes
	}
	go func() {
		defer s.bg.Done()
		b := newBackoff()
		for {
			id, connected, changed, closed := s.state()
			switch {
			case closed || id != sid:
				return
			case connected:
				if op() == nil {
					return
				}
				select {
				case <-time.After(b.next()):
				case <-changed:
				}
			default:
				<-changed
			}
		}
	}()
}

// backoff doubles a delay from 20 ms up to one second.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) next() time.Duration {
	b.d = min(max(2*b.d, 20*time.Millisecond), time.Second)
	return b.d
}
