package redisq

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/redis/go-redis/v9"
)

// A hub is a session's one pub/sub connection. Waiters and observers join
// the channel of their name; a channel is subscribed while anyone of the
// session is on it. A grant message wakes only the waiters it names; any
// message wakes the observers; a resubscription after a reconnect wakes
// everyone on the channel, since messages may have been missed meanwhile.
type hub struct {
	ps      *redis.PubSub
	closing chan struct{}
	done    chan struct{}

	mu      sync.Mutex
	closed  bool
	chans   map[string]*channel
	pending map[string]int // SUBSCRIBE commands not yet confirmed, per channel
}

type channel struct {
	subs  map[*sub]struct{}
	ready chan struct{} // closed once the subscription is confirmed
}

// A sub is one waiter or observer on a channel.
type sub struct {
	h      *hub
	name   string
	member string        // the waiter's member; "" for an observer
	wake   chan struct{} // buffered 1: something may have changed
	mu     sync.Mutex
	token  uint64 // set when a grant message named member
}

// granted returns the token a grant message brought, or 0.
func (s *sub) granted() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

func (s *sub) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// newHub subscribes to the session's own channel (which nobody publishes
// on) to open the connection, waits for the confirmation, and starts the
// receive loop.
func newHub(ctx context.Context, c Client, own string) (*hub, error) {
	ps := c.Subscribe(ctx, own)
	if _, err := ps.ReceiveTimeout(ctx, 10*time.Second); err != nil {
		ps.Close()
		return nil, distsync.Errorf(distsync.ErrUnavailable, err, "subscribe")
	}
	h := &hub{
		ps:      ps,
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		chans:   map[string]*channel{},
		pending: map[string]int{},
	}
	go h.loop()
	return h, nil
}

func (h *hub) loop() {
	defer close(h.done)
	var backoff time.Duration
	for {
		msg, err := h.ps.Receive(context.Background())
		if err != nil {
			select {
			case <-h.closing:
				return
			default:
			}
			// The next Receive redials and resubscribes; do not spin while
			// the server is away.
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-h.closing:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		backoff = 0
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

// confirmed handles a subscribe confirmation: the awaited one, or one sent
// by a resubscription after a reconnect.
func (h *hub) confirmed(name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	resub := h.pending[name] == 0
	if !resub {
		h.pending[name]--
		if h.pending[name] == 0 {
			delete(h.pending, name)
		}
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

// dispatch wakes the observers of a channel and the waiters a message
// grants.
func (h *hub) dispatch(name, payload string) {
	grants := map[string]uint64{}
	for line := range strings.SplitSeq(payload, "\n") {
		member, tok, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(tok, 10, 64); err == nil {
			grants[member] = n
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.chans[name]
	if c == nil {
		return
	}
	for s := range c.subs {
		if s.member == "" {
			s.signal()
			continue
		}
		if tok, ok := grants[s.member]; ok {
			s.mu.Lock()
			s.token = tok
			s.mu.Unlock()
			s.signal()
		}
	}
}

// join puts a waiter (member != "") or an observer on channel name and
// returns once the subscription is confirmed, so that no message published
// afterwards is missed.
func (h *hub) join(ctx context.Context, name, member string) (*sub, error) {
	s := &sub{h: h, name: name, member: member, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	c := h.chans[name]
	fresh := c == nil
	if fresh {
		c = &channel{subs: map[*sub]struct{}{}, ready: make(chan struct{})}
		h.chans[name] = c
		h.pending[name]++
	}
	c.subs[s] = struct{}{}
	h.mu.Unlock()
	if fresh {
		if err := h.ps.Subscribe(context.WithoutCancel(ctx), name); err != nil {
			h.mu.Lock()
			if h.pending[name]--; h.pending[name] <= 0 {
				delete(h.pending, name)
			}
			h.mu.Unlock()
			h.leave(s)
			return nil, distsync.Errorf(distsync.ErrUnavailable, err, "subscribe")
		}
	}
	select {
	case <-c.ready:
		return s, nil
	case <-ctx.Done():
		h.leave(s)
		return nil, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "subscribing")
	case <-h.closing:
		h.leave(s)
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
}

// leave takes s off its channel, unsubscribing when it was the last.
func (h *hub) leave(s *sub) {
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
		_ = h.ps.Unsubscribe(context.Background(), s.name)
	}
}

// close ends the connection and waits for the receive loop.
func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		<-h.done
		return
	}
	h.closed = true
	close(h.closing)
	h.mu.Unlock()
	_ = h.ps.Close()
	<-h.done
}
