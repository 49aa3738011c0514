package zksync

import (
	"reflect"
	"time"

	"github.com/go-zookeeper/zk"
)

// How a Session follows its connection.
//
// go-zookeeper reports the connection's states (connecting, connected, has
// session, expired) through the event channel and callback given to
// zk.Connect, and silently opens a new session, with a new ID, after an
// expiry. Dial owns its connection and follows it through the callback,
// as the events happen. NewSession gets a connection whose events belong to
// the caller, so it samples the connection's State and SessionID every
// pollInterval instead: both are atomic reads in go-zookeeper. What sampling
// may miss is harmless: a reconnection to the same session within one
// interval (the session, and so every node of it, lived on), or the brief
// StateExpired, which a new session ID reveals anyway (go-zookeeper stores
// the new ID before it reports the new session). Every node watch of a
// waiter or lease also fires, with EventNotWatching, when go-zookeeper learns
// that the session expired or the connection was closed.

// pollInterval is how often a Session on a caller's connection samples it.
// It bounds how late a lease learns of a disconnection, well within the
// third of the session timeout that separates go-zookeeper's noticing a
// silent server from the server's expiring the session.
const pollInterval = 10 * time.Millisecond

// onEvent follows the connection's session events (Dial). go-zookeeper
// calls it from its own goroutines, so it must not block. For a new
// session it runs on the goroutine that has just stored the negotiated
// timeout, which it can therefore read without a race, and before
// go-zookeeper re-arms its watches, which it can therefore order (see
// zkconn.go).
func (s *Session) onEvent(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	conn := s.connp.Load()
	if conn == nil {
		return // Dial samples the connection once it has it
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev.State == zk.StateHasSession {
		s.granted, _ = negotiatedTimeout(conn)
		if s.raw != nil && rearmsWatches(conn) {
			s.raw.hold()
		}
	}
	if s.observeLocked(ev.State, conn.SessionID()) {
		s.broadcastLocked()
	}
}

// sample feeds the state machine the connection's current state.
func (s *Session) sample() {
	conn := s.connp.Load()
	sid := conn.SessionID()
	state := conn.State()
	if conn.SessionID() != sid {
		return // changing: the next sample sees where it went
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sid == 0 && s.zs != nil && state != zk.StateHasSession {
		// go-zookeeper clears the ID when the server says the session
		// expired.
		state = zk.StateExpired
	}
	if s.observeLocked(state, sid) {
		s.broadcastLocked()
	}
}

// poll samples the caller's connection until stop is closed (NewSession).
func (s *Session) poll(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.sample()
		}
	}
}

// drain consumes the events of the Session's own connection until
// go-zookeeper closes the channel, which it does when the connection has
// ended for good (Close, or a caller that closed Conn): the Session is
// closed then, so that nothing waits for a reconnection that cannot come.
func (s *Session) drain(events <-chan zk.Event) {
	for range events {
	}
	s.mu.Lock()
	if !s.closed {
		s.endSessionLocked("zookeeper connection closed")
		s.closed = true
		s.broadcastLocked()
	}
	s.mu.Unlock()
	close(s.connDone)
}

// negotiatedTimeout returns the session timeout the server granted to
// conn. go-zookeeper keeps it in an unexported field and offers no getter,
// so it is read by reflection; ok is false if the field is not there (a
// go-zookeeper other than v1.0.4's layout). The read must not race with a
// new session's handshake: onEvent reads it on the handshake's own
// goroutine, NewSession once the connection has a session.
func negotiatedTimeout(conn *zk.Conn) (d time.Duration, ok bool) {
	f := reflect.ValueOf(conn).Elem().FieldByName("sessionTimeoutMs")
	if !f.IsValid() || f.Kind() != reflect.Int32 {
		return 0, false
	}
	return time.Duration(f.Int()) * time.Millisecond, true
}
