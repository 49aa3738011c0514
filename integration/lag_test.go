package integration

import (
	"sync"
	"time"
)

// A lagMonitor measures how late this process's timers run: a goroutine
// sleeps lagTick over and over and records, for each wake-up, how far past
// its due time it came. On a small machine under the race detector, with
// many clients and the servers on it, a timer can run a few hundred
// milliseconds late; a call bounded by its context's deadline then returns
// that much late too, through no fault of its own. A check of such a bound
// allows for the lag measured meanwhile (worst): a call that blocks past
// its deadline while the process's timers run on time is still caught.
type lagMonitor struct {
	mu      sync.Mutex
	samples []lagSample
	done    chan struct{}
	stopped chan struct{}
}

// A lagSample is one wake-up of the monitor: when, and how late.
type lagSample struct {
	at   time.Time
	late time.Duration
}

// lagTick is the monitor's sleep.
const lagTick = 5 * time.Millisecond

// startLagMonitor starts a monitor; stop ends it.
func startLagMonitor() *lagMonitor {
	m := &lagMonitor{done: make(chan struct{}), stopped: make(chan struct{})}
	go m.run()
	return m
}

func (m *lagMonitor) run() {
	defer close(m.stopped)
	t := time.NewTimer(lagTick)
	defer t.Stop()
	due := time.Now().Add(lagTick)
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
			// The wake-up of this goroutine, not the timer's firing: a
			// goroutine woken by a deadline waits for a processor too.
			now := time.Now()
			m.mu.Lock()
			m.samples = append(m.samples, lagSample{at: now, late: now.Sub(due)})
			m.mu.Unlock()
			due = time.Now().Add(lagTick)
			t.Reset(lagTick)
		}
	}
}

// stop ends the monitor and waits for its goroutine.
func (m *lagMonitor) stop() {
	close(m.done)
	<-m.stopped
}

// worst returns the latest any wake-up came that was due between from and
// to. It first waits (up to a second) for the monitor to wake after to, so
// that a wake-up due in the span but still held up is counted.
func (m *lagMonitor) worst(from, to time.Time) time.Duration {
	for wait := time.Now().Add(time.Second); time.Now().Before(wait); time.Sleep(time.Millisecond) {
		m.mu.Lock()
		caught := len(m.samples) > 0 && !m.samples[len(m.samples)-1].at.Before(to)
		m.mu.Unlock()
		if caught {
			break
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var w time.Duration
	for i := len(m.samples) - 1; i >= 0; i-- {
		s := m.samples[i]
		if s.at.Add(-s.late).Before(from) {
			break
		}
		if !s.at.Add(-s.late).After(to) {
			w = max(w, s.late)
		}
	}
	return w
}
