package integration

import (
	"log/slog"
	"testing"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"go.opentelemetry.io/otel/metric"
)

// sessionOpts are the options a test gives openWith; zero fields are left
// at the backend's defaults.
type sessionOpts struct {
	identity string
	logger   *slog.Logger
	meter    metric.MeterProvider
}

// A backend is what the tests need from one backend: Sessions as separate
// processes would have them, and ways to reach into the server from
// outside. There is one per backend (etcdBackend, redisBackend, zkBackend),
// built on the backend's Session; the conformance suite runs through it
// (see kit). Every function fails t on error and registers its own cleanup.
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
	// short-lived states (see distsynctest.Backend.ObserveCoalesces).
	// False for etcd and Redis.
	observeCoalesces bool
}

// backends returns the three backends, in the order etcd, Redis,
// ZooKeeper.
func backends() []backend {
	return []backend{etcdBackend(), redisBackend(), zkBackend()}
}

// kit returns b as the kit's conformance suite takes it. Sessions without
// an identity come from open, those with one from openWith, as before the
// suite moved to distsynctest.
func (b backend) kit() distsynctest.Backend {
	return distsynctest.Backend{
		Open: func(t *testing.T, identity string) distsync.Session {
			if identity == "" {
				return b.open(t)
			}
			return b.openWith(t, sessionOpts{identity: identity})
		},
		Expire:       func(tb testing.TB, s distsync.Session) { b.expire(asT(tb), s) },
		DeleteHolder: func(tb testing.TB, l distsync.Lease) { b.deleteState(asT(tb), l) },
		Entries: func(tb testing.TB, _ distsync.Session, name string) []string {
			return b.keys(asT(tb), name)
		},
		OpenCuttable:     b.openCuttable,
		Denied:           b.denied,
		Compact:          b.compact,
		ObserveCoalesces: b.observeCoalesces,
	}
}

// asT is the *testing.T behind tb: the adapters take one, and
// distsynctest.TestSession passes one.
func asT(tb testing.TB) *testing.T {
	tb.Helper()
	t, ok := tb.(*testing.T)
	if !ok {
		tb.Fatalf("integration: the backend adapters need a *testing.T, got %T", tb)
	}
	return t
}
