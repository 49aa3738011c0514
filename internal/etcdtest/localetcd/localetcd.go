// Package localetcd runs an etcd member inside the process, on free
// loopback ports with its data in a temporary directory: for the examples,
// which must run with no etcd installed, and for the tests' servers.
package localetcd

import (
	"fmt"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// startTimeout bounds how long Start waits for the member to elect itself.
// A single member needs a few ticks; the rest is margin for -race on a
// loaded two-core machine.
const startTimeout = 30 * time.Second

// Server is one embedded etcd member serving plain gRPC on a loopback TCP
// port, with its data in a temporary directory that Stop removes.
//
// The member ticks every 10ms with a 100ms election timeout, so the
// smallest lease TTL etcd grants is one second rather than two and
// sessions expire quickly. Writes skip fsync: the data directory is thrown
// away.
type Server struct {
	srv       *embed.Etcd
	dir       string
	endpoints []string
}

// Start starts a member logging to lg and returns once it has elected
// itself leader and serves requests. On error nothing is left running and
// the data directory is removed. The caller must call Stop.
func Start(lg *zap.Logger) (*Server, error) { return StartTicking(lg, 10*time.Millisecond) }

// StartTicking is Start with a heartbeat of tick and an election timeout
// of ten ticks. etcd's smallest lease TTL follows from them (1.5 election
// timeouts, rounded up to whole seconds): 1 s at Start's 10 ms, 2 s at
// etcd's default 100 ms.
func StartTicking(lg *zap.Logger, tick time.Duration) (*Server, error) {
	dir, err := os.MkdirTemp("", "distsync-etcd-")
	if err != nil {
		return nil, fmt.Errorf("localetcd: data dir: %w", err)
	}

	cfg := embed.NewConfig()
	cfg.Name = "distsync"
	cfg.Dir = dir
	// Port 0 lets the kernel pick free ports when the listeners are bound, so
	// there is no window in which another process can take a port we probed.
	// The advertised URLs keep port 0: a single member never dials its own
	// peer URL, and clients use the bound address read back below.
	local := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenPeerUrls = []url.URL{local}
	cfg.AdvertisePeerUrls = []url.URL{local}
	cfg.ListenClientUrls = []url.URL{local}
	cfg.AdvertiseClientUrls = []url.URL{local}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.TickMs = uint(tick / time.Millisecond)
	cfg.ElectionMs = 10 * cfg.TickMs
	cfg.UnsafeNoFsync = true
	// The HTTP gateway would add a loopback gRPC client of the server's own;
	// nothing here speaks JSON to etcd.
	cfg.EnableGRPCGateway = false
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)

	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("localetcd: start etcd: %w", err)
	}
	s := &Server{srv: srv, dir: dir}

	select {
	case <-srv.Server.ReadyNotify():
	case err := <-srv.Err():
		s.Stop()
		return nil, fmt.Errorf("localetcd: etcd failed while starting: %w", err)
	case <-time.After(startTimeout):
		s.Stop()
		return nil, fmt.Errorf("localetcd: etcd not ready after %v", startTimeout)
	}

	for _, l := range srv.Clients {
		s.endpoints = append(s.endpoints, l.Addr().String())
	}
	return s, nil
}

// Endpoints returns the member's client endpoints ("127.0.0.1:PORT"), ready
// for clientv3.Config.Endpoints. The caller may modify the returned slice.
func (s *Server) Endpoints() []string {
	return append([]string(nil), s.endpoints...)
}

// Stop shuts the member down and removes its data directory. It returns
// after every goroutine of the server has exited, so a goroutine-leak check
// that runs afterwards sees only what others left. Clients should be closed
// first: the server waits up to about five seconds for open watch and
// keepalive streams before cutting them. Stop is idempotent.
func (s *Server) Stop() {
	if s.srv == nil {
		return
	}
	s.srv.Close()
	// Close has already waited for the server's goroutines; draining Err
	// confirms it (Close closes the channel last).
	for range s.srv.Err() {
	}
	s.srv = nil
	os.RemoveAll(s.dir)
}
