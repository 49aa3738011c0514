package redisq

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/redis/go-redis/v9"
)

// A hub is a session's one pub/sub connection. It is subscribed to the
// session's own channel, on which the scripts publish the grants of the
// session's waiters ("member token" lines), so that a grant reaches only
// the session it names and wakes only the waiter it names: waiters need no
// subscription of their own, and a release costs one message, not one per
// session waiting on the name. A release's reply names the same grants,
// and deliver hands them to the waiters of the releasing process at once.
// Observers join the channel of their name, subscribed while anyone of the
// session is on it; any message there wakes them. A resubscription after a
// reconnect wakes every waiter (own channel) or observer (name channel),
// since messages may have been missed meanwhile.
//
// A connection that stays open but delivers nothing (packets dropped, a
// connection-tracking entry lost) would keep the hub deaf: grants would
// then reach waiters only at their re-checks. So when nothing arrives for
// health, the hub sends PING; when the pong does not arrive within
// another health, it replaces the connection with a new one subscribed to
// the same channels (which wakes everyone, as a reconnect does).
type hub struct {
	c       Client
	own     string
	health  time.Duration
	closing chan struct{}
	// closingCtx is cancelled when closing is closed, for waits that take
	// a context.
	closingCtx    context.Context
	cancelClosing context.CancelFunc
	done          chan struct{}

	psMu sync.Mutex
	ps   *redis.PubSub // the current connection; replaced with h.wire held

	// wire is held from deciding to subscribe or unsubscribe a channel
	// until the command is sent, so that SUBSCRIBE and UNSUBSCRIBE of one
	// channel reach the server in the order the hub decided them (else a
	// late UNSUBSCRIBE could silently undo a newer SUBSCRIBE).
	wire sync.Mutex

	mu      sync.Mutex
	closed  bool
	denied  error           // set once Redis refused a resubscription for good
	deniedC chan struct{}   // closed when denied is set
	waiters map[string]*sub // by member
	chans   map[string]*channel
	pending map[string]int // SUBSCRIBE commands not yet confirmed, per channel
	order   []string       // the channels of those commands, in sending order
}

type channel struct {
	subs  map[*sub]struct{}
	ready chan struct{} // closed once the subscription is confirmed or refused
	err   error         // why it was refused (ErrDenied), set before ready closes
}

// A sub is one waiter or observer.
type sub struct {
	h       *hub
	name    string        // an observer's channel
	member  string        // a waiter's member; "" for an observer
	k       Keys          // a waiter's keys
	wake    chan struct{} // buffered 1: something may have changed
	suspend atomic.Bool   // a waiter stops refreshing its entry (see Expire)
	mu      sync.Mutex
	token   uint64 // set when a grant message named member
	limit   int64  // the stored limit the grant message reported
}

// granted returns the token a grant message brought, or 0, and the stored
// limit it reported.
func (s *sub) granted() (token uint64, limit int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token, s.limit
}

func (s *sub) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// newHub subscribes to the session's own channel, waits for the
// confirmation, and starts the receive loop.
func newHub(ctx context.Context, c Client, own string, health time.Duration) (*hub, error) {
	ps, err := subscribe(ctx, c, own)
	if err != nil {
		return nil, err
	}
	cctx, ccancel := context.WithCancel(context.Background())
	h := &hub{
		c:             c,
		ps:            ps,
		own:           own,
		health:        health,
		closingCtx:    cctx,
		cancelClosing: ccancel,
		closing:       make(chan struct{}),
		waiters:       map[string]*sub{},
		done:          make(chan struct{}),
		chans:         map[string]*channel{},
		pending:       map[string]int{},
		deniedC:       make(chan struct{}),
	}
	go h.loop()
	return h, nil
}

// subscribe opens a pub/sub connection subscribed to own and waits for
// the confirmation, at most 10 s, returning when ctx ends (go-redis reads
// the confirmation until a deadline only; closing the connection ends the
// read at once).
func subscribe(ctx context.Context, c Client, own string) (*redis.PubSub, error) {
	psc := make(chan *redis.PubSub, 1)
	errc := make(chan error, 1)
	go func() {
		ps := c.Subscribe(ctx, own)
		psc <- ps
		_, err := ps.ReceiveTimeout(ctx, 10*time.Second)
		errc <- err
	}()
	fail := func(err error) error {
		if ctx.Err() != nil && !isDenied(err) {
			return distsync.Errorf(distsync.ErrUnavailable, errors.Join(context.Cause(ctx), err), "subscribe")
		}
		return failure(err, "subscribe")
	}
	var ps *redis.PubSub
	select {
	case ps = <-psc:
	case <-ctx.Done():
		// Subscribe only dials and writes, within the client's timeouts.
		go func() { (<-psc).Close() }()
		return nil, fail(nil)
	}
	select {
	case err := <-errc:
		if err != nil {
			ps.Close()
			return nil, fail(err)
		}
		return ps, nil
	case <-ctx.Done():
		ps.Close()
		<-errc
		return nil, fail(nil)
	}
}

// current returns the current connection.
func (h *hub) current() *redis.PubSub {
	h.psMu.Lock()
	defer h.psMu.Unlock()
	return h.ps
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (h *hub) loop() {
	defer close(h.done)
	var (
		delay  backoff.Backoff
		pinged bool // a PING is out and nothing came since
	)
	for {
		ps := h.current()
		msg, err := ps.ReceiveTimeout(context.Background(), h.health)
		if err != nil {
			select {
			case <-h.closing:
				return
			default:
			}
			if isTimeout(err) {
				if !pinged {
					pinged = true
					_ = ps.Ping(context.Background())
				} else {
					pinged = false
					if !h.replace(ps) {
						return
					}
				}
				continue
			}
			pinged = false
			if isDenied(err) {
				if h.refuse(err) {
					continue
				}
				// A resubscription refused for good: retrying cannot
				// help, so the hub stops and its users fail with
				// ErrDenied.
				h.deny(err)
				return
			}
			// The next Receive redials and resubscribes; do not spin while
			// the server is away.
			if !delay.Sleep(h.closingCtx) {
				return
			}
			continue
		}
		delay.Reset()
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				h.confirmed(m.Channel)
			}
		case *redis.Message:
			h.dispatch(m.Channel, m.Payload)
		}
	}
}

// replace swaps old, a connection that answered nothing for two health
// periods, for a new one subscribed to the same channels, and closes old.
// The new subscriptions' confirmations wake every waiter and observer, as
// after a reconnect. It reports false when the hub closed meanwhile: the
// new connection's dial and handshake, bounded only by the client's
// timeouts, then finish in the background and the connection is closed.
func (h *hub) replace(old *redis.PubSub) bool {
	_ = old.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.wire.Lock()
		defer h.wire.Unlock()
		h.mu.Lock()
		names := []string{h.own}
		for name := range h.chans {
			names = append(names, name)
		}
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		ps := h.c.Subscribe(ctx, names...)
		h.psMu.Lock()
		closed := h.closedLocked()
		if !closed {
			h.ps = ps
		}
		h.psMu.Unlock()
		if closed {
			_ = ps.Close()
		}
	}()
	select {
	case <-done:
		return true
	case <-h.closing:
		return false
	}
}

// closedLocked reports whether close was called.
func (h *hub) closedLocked() bool {
	select {
	case <-h.closing:
		return true
	default:
		return false
	}
}

// confirmed handles a subscribe confirmation: the awaited one, or one sent
// by a resubscription after a reconnect.
func (h *hub) confirmed(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if name == h.own {
		// newHub consumed the first confirmation: this is a
		// resubscription.
		for _, s := range h.waiters {
			s.signal()
		}
		return
	}
	resub := h.pending[name] == 0
	if !resub {
		h.unpend(name)
	}
	c := h.chans[name]
	if c == nil {
		return
	}
	if h.pending[name] == 0 {
		select {
		case <-c.ready:
		default:
			close(c.ready)
		}
	}
	if resub {
		for s := range c.subs {
			s.signal()
		}
	}
}

// unpend forgets one SUBSCRIBE of name not yet confirmed. h.mu must be
// held.
func (h *hub) unpend(name string) {
	if h.pending[name]--; h.pending[name] <= 0 {
		delete(h.pending, name)
	}
	for i, n := range h.order {
		if n == name {
			h.order = append(h.order[:i:i], h.order[i+1:]...)
			break
		}
	}
}

// refuse handles a refusal (ErrDenied) that Redis sent in reply to a
// SUBSCRIBE: replies come in order, so it is the oldest one not yet
// confirmed, and the observers joining that channel fail. It reports
// false when no SUBSCRIBE of an observer was pending: the refusal was a
// resubscription's.
func (h *hub) refuse(cause error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.order) == 0 {
		return false
	}
	name := h.order[0]
	h.unpend(name)
	if c := h.chans[name]; c != nil && h.pending[name] == 0 {
		c.err = failure(cause, "subscribe")
		select {
		case <-c.ready:
		default:
			close(c.ready)
		}
		// A later join subscribes anew.
		delete(h.chans, name)
	}
	return true
}

// dispatch wakes the waiters a grant on the own channel names, or the
// observers of a name's channel.
func (h *hub) dispatch(name, payload string) {
	if name != h.own {
		h.mu.Lock()
		defer h.mu.Unlock()
		if c := h.chans[name]; c != nil {
			for s := range c.subs {
				s.signal()
			}
		}
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for line := range strings.SplitSeq(payload, "\n") {
		if m, token, limit, ok := parseGrant(line); ok {
			if s := h.waiters[m]; s != nil {
				s.grant(token, limit)
			}
		}
	}
}

// parseGrant parses a line the scripts publish, "member token limit": a
// grant under the stored limit, or with token 0 a request to re-check (the
// limit changed).
func parseGrant(line string) (member string, token uint64, limit int64, ok bool) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return "", 0, 0, false
	}
	n, err1 := strconv.ParseUint(f[1], 10, 64)
	l, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, false
	}
	return f[0], n, l, true
}

// grant wakes the waiter with the token and limit of a grant line, or with
// token 0 only wakes it to re-check.
func (s *sub) grant(token uint64, limit int64) {
	if token != 0 {
		s.mu.Lock()
		s.token, s.limit = token, limit
		s.mu.Unlock()
	}
	s.signal()
}

// locals holds every waiter of the process, of any Session, by member (a
// member names its session, whose id is random, so it names one waiter).
var locals sync.Map

// deliver hands the grant lines of a release's reply to the waiters of
// this process they name. A release from one goroutine that hands the name
// to another of the same process then wakes it at once, rather than
// through the server and the other session's pub/sub connection: that
// connection's read is another wake-up, one the process waited ~100 µs
// for when its own reply arrived first. The pub/sub message still comes;
// it finds the waiter gone, or granted already with the same token.
func deliver(lines []any) {
	for _, v := range lines {
		line, _ := v.(string)
		if m, token, limit, ok := parseGrant(line); ok {
			if s, found := locals.Load(m); found {
				s.(*sub).grant(token, limit)
			}
		}
	}
}

// wait registers a waiter for member of k: a grant naming it wakes it.
// The own channel is subscribed since the session opened, so no grant
// published after wait returns is missed (a reconnect wakes every waiter).
func (h *hub) wait(k Keys, member string) (*sub, error) {
	s := &sub{h: h, member: member, k: k, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	if h.denied != nil {
		return nil, h.denied
	}
	h.waiters[member] = s
	locals.Store(member, s)
	return s, nil
}

// deny records that Redis refused the hub for good, and wakes every
// waiter and observer so that they see it (err()).
func (h *hub) deny(cause error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.denied = failure(cause, "resubscribe")
	close(h.deniedC)
	for _, s := range h.waiters {
		s.signal()
	}
	for _, c := range h.chans {
		for s := range c.subs {
			s.signal()
		}
	}
}

// err returns the error wrapping ErrDenied once Redis refused the hub for
// good, else nil.
func (h *hub) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.denied
}

// unwait removes a waiter.
func (h *hub) unwait(s *sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.waiters, s.member)
	locals.CompareAndDelete(s.member, s)
}

// join puts an observer on channel name and returns once the subscription
// is confirmed, so that no message published afterwards is missed.
func (h *hub) join(ctx context.Context, name string) (*sub, error) {
	s := &sub{h: h, name: name, wake: make(chan struct{}, 1)}
	// Sending SUBSCRIBE may wait for the wire (a connection being
	// replaced) or a dial, bounded only by the client's timeouts: do not
	// wait past ctx; an abandoned join leaves once it is done.
	type added struct {
		c   *channel
		err error
	}
	res := make(chan added, 1)
	go func() {
		h.wire.Lock()
		c, err := h.add(ctx, s)
		h.wire.Unlock()
		res <- added{c, err}
	}()
	var c *channel
	select {
	case a := <-res:
		if a.err != nil {
			return nil, a.err
		}
		c = a.c
	case <-ctx.Done():
		go func() {
			if a := <-res; a.err == nil {
				h.leave(s)
			}
		}()
		return nil, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "subscribing")
	}
	select {
	case <-c.ready:
		if c.err != nil {
			h.leave(s)
			return nil, c.err
		}
		return s, nil
	case <-ctx.Done():
		h.leave(s)
		return nil, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "subscribing")
	case <-h.closing:
		h.leave(s)
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	case <-h.deniedC:
		h.leave(s)
		return nil, h.err()
	}
}

// add puts s on its channel, subscribing the channel if it is new. h.wire
// must be held.
func (h *hub) add(ctx context.Context, s *sub) (*channel, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	if h.denied != nil {
		h.mu.Unlock()
		return nil, h.denied
	}
	c := h.chans[s.name]
	fresh := c == nil
	if fresh {
		c = &channel{subs: map[*sub]struct{}{}, ready: make(chan struct{})}
		h.chans[s.name] = c
		h.pending[s.name]++
		h.order = append(h.order, s.name)
	}
	c.subs[s] = struct{}{}
	h.mu.Unlock()
	if !fresh {
		return c, nil
	}
	if err := h.current().Subscribe(context.WithoutCancel(ctx), s.name); err != nil {
		h.mu.Lock()
		h.unpend(s.name)
		h.mu.Unlock()
		h.remove(s)
		return nil, failure(err, "subscribe")
	}
	return c, nil
}

// leave takes an observer off its channel, unsubscribing when it was the
// last.
func (h *hub) leave(s *sub) {
	h.wire.Lock()
	defer h.wire.Unlock()
	h.remove(s)
}

// remove is leave with h.wire held.
func (h *hub) remove(s *sub) {
	h.mu.Lock()
	c := h.chans[s.name]
	if c == nil {
		h.mu.Unlock()
		return
	}
	delete(c.subs, s)
	last := len(c.subs) == 0
	if last {
		delete(h.chans, s.name)
	}
	closed := h.closed
	h.mu.Unlock()
	if last && !closed {
		// A failure leaves a subscription whose messages nobody reads; it
		// ends with the connection.
		_ = h.current().Unsubscribe(context.Background(), s.name)
	}
}

// close ends the connection and waits for the receive loop.
//
// Closing a go-redis PubSub waits for a dial in progress on it, up to the
// client's DialTimeout, and the receive loop may be in that dial: close
// waits for both until deadline (at least 100 ms), and the rest ends in the
// background when the client gives up on the dial.
func (h *hub) close(deadline time.Time) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.psMu.Lock()
	close(h.closing)
	h.cancelClosing()
	ps := h.ps
	h.psMu.Unlock()
	h.mu.Unlock()
	go func() { _ = ps.Close() }()
	t := time.NewTimer(max(time.Until(deadline), 100*time.Millisecond))
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C:
	}
}
