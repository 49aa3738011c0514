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
// processes would have them, and the server's history and refusals. Losses
// and state reads are the kit's (distsynctest.Expire, DeleteHolder and
// Entries). There is one per backend (etcdBackend, redisBackend, zkBackend),
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
// suite moved to distsynctest. Expire, DeleteHolder and Entries are left
// nil, so that the suite exercises the kit's own.
func (b backend) kit() distsynctest.Backend {
	return distsynctest.Backend{
		Open: func(t *testing.T, identity string) distsync.Session {
			if identity == "" {
				return b.open(t)
			}
			return b.openWith(t, sessionOpts{identity: identity})
		},
		OpenCuttable:     b.openCuttable,
		Denied:           b.denied,
		Compact:          b.compact,
		ObserveCoalesces: b.observeCoalesces,
	}
}
