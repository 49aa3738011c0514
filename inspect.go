package distsync

import "time"

// Status is what Session.Inspect reads of one name: who holds it and who
// waits for it, as stored on the backend at one moment.
type Status struct {
	// Name is the name inspected.
	Name string

	// Limit is the limit stored with a semaphore that is in use; zero for
	// other kinds and for an idle name.
	Limit int64

	// Holders are the current holders: one lock, any number of readers,
	// up to Limit permits, or the leader. They are in queue order.
	Holders []Holder

	// Waiters are the acquisitions and candidates waiting, in queue
	// order: the first is served next (on Redis, whose waiters race for
	// a free lock, the order is that of arrival where the primitive keeps
	// one).
	Waiters []Holder
}

// Mode says what a Holder holds or waits for.
type Mode string

// The modes of a Holder.
const (
	ModeExclusive Mode = "exclusive" // a Mutex lock or an election candidacy
	ModeRead      Mode = "read"      // an RWMutex read lock
	ModeWrite     Mode = "write"     // an RWMutex write lock
	ModePermit    Mode = "permit"    // Semaphore permits (see Weight)
)

// Holder is one holder or waiter of a name, as Inspect reads it.
type Holder struct {
	// Token identifies the acquisition among the name's holders and
	// waiters. It is the fencing token its Lease has (or will have, once
	// acquired, on etcd and ZooKeeper); ForceRelease takes it.
	Token uint64

	// Identity is the holder identity the acquiring Session recorded (its
	// WithIdentity; by default DefaultIdentity()). On etcd, whose mutex
	// and election keys look alike, a candidate's is its campaign value.
	Identity string

	// Mode is what it holds or waits for.
	Mode Mode

	// Weight is the number of permits (ModePermit); 1 otherwise.
	Weight int64

	// Since is when it joined the queue, by the backend's clock; zero
	// where the backend does not record it (etcd).
	Since time.Time

	// TTL is how long the backend keeps it unless it is renewed, as of
	// the Inspect; zero where the backend does not know (ZooKeeper,
	// whose ephemeral nodes live as long as their session).
	TTL time.Duration
}
