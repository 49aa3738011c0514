package integration

import (
	"log/slog"
	"testing"

	"github.com/distsync/distsync"
	"go.opentelemetry.io/otel/metric"
)

// sessionOpts are the options a test gives openWith; zero fields are left
// at the backend's defaults.
type sessionOpts struct {
	identity string
	logger   *slog.Logger
	meter    metric.MeterProvider
}

// A backend is what the conformance suite needs from one backend: Sessions
// as separate processes would have them, and ways to reach into the server
// from outside. There is one per backend (etcdBackend, redisBackend,
// zkBackend), built on the backend's Session; every primitive's suite runs
// through it. Every function fails t on error and registers its own
// cleanup.
type backend struct {
	// name is the backend's name in test names: "etcd", "redis",
	// "zookeeper".
	name string

	// open returns a new Session on a client of its own, as a separate
	// process would have, closed at cleanup.
	open func(t *testing.T) distsync.Session

	// openWith is open with the options of o: an identity, a logger and
	// a MeterProvider (each when set), and the name as a metric attribute.
	openWith func(t *testing.T, o sessionOpts) distsync.Session

	// openCuttable is open on a client whose connection to the backend the
	// test can cut (every connection dropped, new ones refused) and heal.
	openCuttable func(t *testing.T) (s distsync.Session, cut, heal func())

	// expire ends the backend session underneath s from outside, as an
	// expiry would: etcd revokes the session's current lease, ZooKeeper
	// expires its session, Redis makes every lease of s expire unrenewed.
	// It returns once the backend has ended it (the leases of s end as
	// lost soon after).
	expire func(t *testing.T, s distsync.Session)

	// deleteState deletes the backend state (key or node) of l from
	// outside.
	deleteState func(t *testing.T, l distsync.Lease)

	// keys lists the backend state of name: holders, waiters and
	// candidates, of whichever primitive kind.
	keys func(t *testing.T, name string) []string

	// compact discards the backend's history of changes up to now; nil for
	// a backend that keeps none.
	compact func(t *testing.T)

	// denied returns a Session authenticated as a user that the server
	// refuses for every distsync name (etcd: a user whose role grants no
	// key; Redis: an ACL user without our keys; ZooKeeper: a session
	// without the digest that the root's ACL requires). Opening it may
	// already fail: then denied fails t unless the error wraps ErrDenied,
	// and returns nil.
	denied func(t *testing.T) distsync.Session

	// observeCoalesces declares that the backend's Observe may skip
	// short-lived states (see electionBackend.observeCoalesces). False for
	// etcd and Redis.
	observeCoalesces bool
}

// backends returns the three backends, in the order etcd, Redis,
// ZooKeeper.
func backends() []backend {
	return []backend{etcdBackend(), redisBackend(), zkBackend()}
}
