package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// A counter counts the requests one library's clients send during one
// scenario run: every client a library opens for the run reports here, so
// requests per acquisition are the library's own, whatever it does.
//
//   - etcd: unary RPCs (Txn, Range, DeleteRange, LeaseGrant, ...) and watch
//     creations, through gRPC interceptors. Lease keep-alives are per
//     session and time, not per lock, and are not counted.
//   - Redis: commands sent through the client (a script call is one), by a
//     go-redis hook or a wrapper of the rueidis client; pub/sub pushes and
//     client-side-cache hits are not requests.
//   - ZooKeeper: request frames written on the connection, pings and the
//     connect handshake excepted.
type counter struct {
	n atomic.Int64

	mu     sync.Mutex
	byKind map[string]int64 // etcd: requests per RPC method ("Watch" for creations)
}

func (c *counter) load() int64 { return c.n.Load() }

func (c *counter) reset() {
	c.n.Store(0)
	c.mu.Lock()
	clear(c.byKind)
	c.mu.Unlock()
}

func (c *counter) add(kind string) {
	c.n.Add(1)
	c.mu.Lock()
	if c.byKind == nil {
		c.byKind = map[string]int64{}
	}
	c.byKind[kind]++
	c.mu.Unlock()
}

// kinds returns the etcd counts per method, as "DeleteRange=3 Txn=2", to
// tell where a count comes from; "" for the other backends.
func (c *counter) kinds() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c.byKind)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, c.byKind[k]))
	}
	return strings.Join(parts, " ")
}

// grpcOptions returns the dial options that count an etcd client's
// requests into c.
func (c *counter) grpcOptions() []grpc.DialOption {
	unary := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		c.add(method[strings.LastIndexByte(method, '/')+1:])
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	stream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return &watchCounting{ClientStream: s, c: c}, nil
	}
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)}
}

// watchCounting counts the watch creations sent on a stream; only the
// watch stream carries *pb.WatchRequest.
type watchCounting struct {
	grpc.ClientStream
	c *counter
}

func (s *watchCounting) SendMsg(m any) error {
	if wr, ok := m.(*pb.WatchRequest); ok && wr.GetCreateRequest() != nil {
		s.c.add("Watch")
	}
	return s.ClientStream.SendMsg(m)
}

// redisHook is a go-redis hook counting into its counter.
type redisHook struct{ c *counter }

func (h redisHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h redisHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h redisHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// rueidisCounting wraps a rueidis client (rueidislock's) to count the
// commands it sends.
type rueidisCounting struct {
	rueidis.Client
	c *counter
}

func (r rueidisCounting) Do(ctx context.Context, cmd rueidis.Completed) rueidis.RedisResult {
	r.c.n.Add(1)
	return r.Client.Do(ctx, cmd)
}

func (r rueidisCounting) DoMulti(ctx context.Context, multi ...rueidis.Completed) []rueidis.RedisResult {
	r.c.n.Add(int64(len(multi)))
	return r.Client.DoMulti(ctx, multi...)
}

func (r rueidisCounting) DoCache(ctx context.Context, cmd rueidis.Cacheable, ttl time.Duration) rueidis.RedisResult {
	res := r.Client.DoCache(ctx, cmd, ttl)
	if !res.IsCacheHit() {
		r.c.n.Add(1)
	}
	return res
}

func (r rueidisCounting) DoMultiCache(ctx context.Context, multi ...rueidis.CacheableTTL) []rueidis.RedisResult {
	res := r.Client.DoMultiCache(ctx, multi...)
	for _, x := range res {
		if !x.IsCacheHit() {
			r.c.n.Add(1)
		}
	}
	return res
}

func (r rueidisCounting) Receive(ctx context.Context, subscribe rueidis.Completed, fn func(rueidis.PubSubMessage)) error {
	r.c.n.Add(1)
	return r.Client.Receive(ctx, subscribe, fn)
}

// zkDialer returns a go-zookeeper dialer whose connections count their
// request frames into c. go-zookeeper writes each request with one Write:
// length, xid, opcode, body; pings have xid -2 and the first frame is the
// connect request.
func (c *counter) zkDialer() func(network, addr string, timeout time.Duration) (net.Conn, error) {
	return func(network, addr string, timeout time.Duration) (net.Conn, error) {
		conn, err := net.DialTimeout(network, addr, timeout)
		if err != nil {
			return nil, err
		}
		return &zkCounting{Conn: conn, c: c}, nil
	}
}

type zkCounting struct {
	net.Conn
	c         *counter
	connected bool // the connect request has been written
}

func (z *zkCounting) Write(p []byte) (int, error) {
	switch {
	case !z.connected:
		z.connected = true
	case len(p) >= 12 && int32(binary.BigEndian.Uint32(p[4:8])) != -2:
		z.c.n.Add(1)
	}
	return z.Conn.Write(p)
}
