package redisq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distsync/distsync"
	"github.com/redis/go-redis/v9"
)

// errFewReplicas is the cause of a write that fewer replicas acknowledged
// than Options.Replicas asked for.
var errFewReplicas = errors.New("redisq: too few replicas acknowledged")

// pipeliner is what the WAIT option needs beyond Client: a pipeline, so
// that WAIT follows the script on the same connection (WAIT counts the
// replicas that have the connection's own writes).
type pipeliner interface {
	Pipeline() redis.Pipeliner
}

// checkReplicas validates the WAIT option against the client.
func checkReplicas(c Client, o Options) error {
	if o.Replicas == 0 {
		return nil
	}
	if _, ok := c.(pipeliner); !ok {
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "replica acknowledgement needs a client with Pipeline, got %T", c)
	}
	return nil
}

// pipeline returns a pipeline on the connection that owns k's slot: on a
// Cluster, the master of the name's slot (a keyless WAIT would otherwise
// go to any node).
func (s *Session) pipeline(ctx context.Context, k Keys) (redis.Pipeliner, error) {
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, k.Holders)
		if err != nil {
			return nil, err
		}
		return node.Pipeline(), nil
	}
	return s.c.(pipeliner).Pipeline(), nil
}

// runAcked is run followed, when the session asks for replica
// acknowledgement, by WAIT on the same connection: the error wraps
// errFewReplicas (with the script's result returned) when fewer replicas
// than asked acknowledged within the timeout. A write by this connection
// after someone else's (a renewal after a grant by another client's
// release) makes WAIT cover both, since replication is one ordered stream.
func runAcked(ctx context.Context, s *Session, k Keys, sc *redis.Script, member string) (result, error) {
	if s.replicas == 0 {
		return run(ctx, s.c, sc, k, member, 0)
	}
	a := args(k, member, 0, "")
	for attempt := 0; ; attempt++ {
		p, err := s.pipeline(ctx, k)
		if err != nil {
			return result{}, err
		}
		ev := sc.EvalSha(ctx, p, k.list(), a...)
		w := p.Do(ctx, "WAIT", s.replicas, s.replicaTimeout.Milliseconds())
		_, _ = p.Exec(ctx)
		v, err := ev.Slice()
		if err != nil {
			if attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
				if err := sc.Load(ctx, s.c).Err(); err != nil {
					return result{}, err
				}
				continue
			}
			return result{}, err
		}
		r, err := decode(v)
		if err != nil {
			return result{}, err
		}
		n, err := w.Int64()
		if err != nil {
			return r, err
		}
		if n < int64(s.replicas) {
			return r, fmt.Errorf("%w: %d of %d within %v", errFewReplicas, n, s.replicas, s.replicaTimeout)
		}
		return r, nil
	}
}

// runAckedCtx is runAcked bounded by ctx.
func runAckedCtx(ctx context.Context, s *Session, k Keys, sc *redis.Script, member string) (result, error) {
	return call(ctx, func(ctx context.Context) (result, error) { return runAcked(ctx, s, k, sc, member) })
}

// acked confirms a new grant of member with a renewal acknowledged by the
// replicas the session asks for; it returns the time the renewal was sent.
// Without the option it does nothing. On failure the caller must forget
// the member.
func (q *Queue) acked(ctx context.Context, member string, sent time.Time) (time.Time, error) {
	if q.s.replicas == 0 {
		return sent, nil
	}
	sent = time.Now()
	// An acquisition keeps Session.Close waiting (see Session.enter):
	// stop at the close too, not only at ctx's end.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-q.s.hub.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	r, err := runAckedCtx(ctx, q.s, q.k, renewScript, member)
	switch {
	case err != nil && q.s.Closed() && context.Cause(ctx) == context.Canceled:
		return sent, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	case err != nil && isDenied(err):
		return sent, failure(err, "replicas of %q", q.name)
	case err != nil:
		return sent, distsync.Errorf(distsync.ErrUnavailable, errors.Join(err, context.Cause(ctx)), "replicas of %q", q.name)
	case r.status != 1:
		return sent, goneError(r.n, "new lease (before the replicas acknowledged it)", q.name)
	}
	return sent, nil
}
