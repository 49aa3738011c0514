// Observability shows what distsync tells an operator: structured logs,
// OpenTelemetry metrics exported to Prometheus, a health check for the
// leader, and who holds and who waits for a lock. It is a small service on
// an etcd member it starts itself, so that it runs with no setup:
//
//	go run ./examples/observability -once
//
// Every Session of the service is opened with the same options: an
// OpenTelemetry SDK MeterProvider whose reader is the OTel Prometheus
// exporter (etcdsync.WithMeterProvider), a JSON slog logger at Info on
// stderr (etcdsync.WithLogger), and the lock name as a metric attribute
// (etcdsync.WithNameAttribute, for a bounded set of names only). One
// Session runs a distsync.Elector; its leader does periodic work. Two
// workers, each with a Session of its own as separate processes would
// have, contend for the Mutex "jobs". A prober tries the lock while it is
// held (TryLock, which would block) and waits for it with a deadline (a
// cancelled wait), so that every outcome of an acquisition is recorded.
//
// The service serves, on -addr (default 127.0.0.1:0, printed at start):
//
//	/metrics          the Prometheus exposition of the registry
//	/healthz          Elector.Healthz: 500 when the leader's work outlives its leadership
//	/inspect?name=N   Session.Inspect of N, as JSON
//
// Without -once it runs until SIGINT or SIGTERM; try
// curl http://ADDR/metrics. With -once it plays a script instead: the
// workers take turns on the lock, the prober fails twice, and then, while
// worker-1 holds the lock and worker-2 waits for it, the service fetches
// its own /inspect, /healthz and /metrics over HTTP and prints them (the
// distsync_* families of /metrics only). Then it shuts down and exits 0.
// The output looks like (trimmed: each histogram also has its _bucket
// lines, and each family its # HELP line):
//
//	serving on http://127.0.0.1:45009: /metrics, /healthz, /inspect?name=jobs
//	prober: TryLock: distsync: would block: "jobs" is held
//	prober: Lock with a 100ms deadline: distsync: not acquired: waiting for "jobs/…": context deadline exceeded
//	GET /inspect?name=jobs (worker-1 holds the lock, worker-2 waits):
//	{
//	  "name": "jobs",
//	  "holders": [
//	    {
//	      "token": 15,
//	      "identity": "worker-1",
//	      "mode": "exclusive",
//	      "ttl": "1s"
//	    }
//	  ],
//	  "waiters": [
//	    {
//	      "token": 16,
//	      "identity": "worker-2",
//	      "mode": "exclusive",
//	      "ttl": "1s"
//	    }
//	  ]
//	}
//	GET /healthz: 200 ok
//	GET /metrics (distsync_* only):
//	# TYPE distsync_acquire_duration_seconds histogram
//	distsync_acquire_duration_seconds_count{distsync_backend="etcd",distsync_name="jobs",distsync_outcome="acquired",distsync_primitive="mutex"} 7
//	distsync_acquire_duration_seconds_count{distsync_backend="etcd",distsync_name="jobs",distsync_outcome="cancelled",distsync_primitive="mutex"} 1
//	distsync_acquire_duration_seconds_count{distsync_backend="etcd",distsync_name="jobs",distsync_outcome="would_block",distsync_primitive="mutex"} 1
//	# TYPE distsync_election_leader gauge
//	distsync_election_leader{distsync_backend="etcd",distsync_name="observability-leader",distsync_primitive="election"} 1
//	# TYPE distsync_holding gauge
//	distsync_holding{distsync_backend="etcd",distsync_name="jobs",distsync_primitive="mutex"} 1
//	# TYPE distsync_waiting gauge
//	distsync_waiting{distsync_backend="etcd",distsync_name="jobs",distsync_primitive="mutex"} 1
//
// A counter appears once it counts something: the script loses no lease,
// so distsync_lease_lost_total is not among them. The README, under "Metrics", lists every instrument.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/distsynctest"
	"github.com/distsync/distsync/etcdsync"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.uber.org/zap"
)

const (
	lockName     = "jobs"
	electionName = "observability-leader"
	// ttl is every Session's TTL. It is short so that the -once script
	// sees a lease renewal (every TTL/3) within its few seconds.
	ttl = 2 * time.Second
	// onceTimeout bounds the whole -once script.
	onceTimeout = 30 * time.Second
	// leaderTick is the period of the leader's work.
	leaderTick = time.Second
	// healthTolerance is how long the leader's work may outlive its
	// leadership before /healthz fails.
	healthTolerance = 2 * time.Second
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to serve /metrics, /healthz and /inspect on")
	once := flag.Bool("once", false, "play the script, print the metrics and exit, instead of serving until a signal")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, config{addr: *addr, once: *once, stdout: os.Stdout, stderr: os.Stderr}); err != nil {
		fmt.Fprintln(os.Stderr, "observability:", err)
		stop()
		os.Exit(1)
	}
}

// config is what run needs from the command line and the process.
type config struct {
	addr           string
	once           bool
	stdout, stderr io.Writer // the report; the log records
}

// run is the whole service. With cfg.once it plays the script and returns;
// otherwise it serves until ctx ends, and returns nil then.
func run(ctx context.Context, cfg config) (err error) {
	if cfg.once {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, onceTimeout)
		defer cancel()
	}
	logger := slog.New(slog.NewJSONHandler(cfg.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// The OpenTelemetry side: an SDK MeterProvider read by the Prometheus
	// exporter, which registers itself as a collector in reg. A registry
	// of its own keeps the Go runtime's collectors out of /metrics.
	// WithoutScopeInfo drops the otel_scope_* labels from every series:
	// only distsync records into this provider.
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer func() { err = errors.Join(err, mp.Shutdown(context.Background())) }()

	// A real service connects to its etcd cluster with clientv3.New. The
	// example starts a member of its own instead.
	etcd, err := distsynctest.StartEtcd()
	if err != nil {
		return err
	}
	defer etcd.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	// Deferred after Stop, so it runs first: the server then has no open
	// streams to wait for.
	defer cli.Close()

	// Every Session records into the same provider and logs to the same
	// logger; its identity tells the Sessions apart in logs and Inspect.
	var sessions []*etcdsync.Session
	defer func() {
		for _, s := range sessions {
			err = errors.Join(err, s.Close())
		}
	}()
	open := func(identity string) (*etcdsync.Session, error) {
		s, err := etcdsync.NewSession(ctx, cli,
			etcdsync.WithTTL(ttl),
			etcdsync.WithIdentity(identity),
			etcdsync.WithMeterProvider(mp),
			etcdsync.WithLogger(logger),
			etcdsync.WithNameAttribute(),
		)
		if err == nil {
			sessions = append(sessions, s)
		}
		return s, err
	}

	leaderSession, err := open("leader")
	if err != nil {
		return err
	}
	el, leading, stopLeader, err := startElector(ctx, leaderSession, logger)
	if err != nil {
		return err
	}
	// Deferred after the Sessions' Close, so it runs first: the leader
	// resigns while its Session lives.
	defer func() { err = errors.Join(err, stopLeader()) }()

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler(reg, el, leaderSession), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, srv.Shutdown(sctx))
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}()
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(cfg.stdout, "serving on %s: /metrics, /healthz, /inspect?name=%s\n", base, lockName)

	var locks []distsync.Mutex
	for _, id := range []string{"worker-1", "worker-2", "prober"} {
		s, err := open(id)
		if err != nil {
			return err
		}
		m, err := s.Mutex(lockName)
		if err != nil {
			return err
		}
		locks = append(locks, m)
	}
	w := workers{one: locks[0], two: locks[1], prober: locks[2]}
	if !cfg.once {
		w.busy(ctx, logger)
		return nil
	}
	return w.script(ctx, &lineWriter{w: cfg.stdout}, base, leading)
}

// startElector runs an Elector on s's Election. Its leader works (see
// lead) until it loses leadership or stop is called. leading is closed
// when this process first leads. stop ends Run, which resigns, and
// returns Run's error.
func startElector(ctx context.Context, s *etcdsync.Session, logger *slog.Logger) (el *distsync.Elector, leading <-chan struct{}, stop func() error, err error) {
	e, err := s.Election(electionName)
	if err != nil {
		return nil, nil, nil, err
	}
	led := make(chan struct{})
	var once sync.Once
	el = &distsync.Elector{
		Election: e,
		Value:    []byte("leader"),
		Identity: "leader",
		Logger:   logger,
		Callbacks: distsync.Callbacks{
			OnStartedLeading: func(ctx context.Context, l distsync.Leadership) {
				once.Do(func() { close(led) })
				lead(ctx, s, l, logger)
			},
		},
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- el.Run(rctx) }()
	var stopOnce sync.Once
	var runErr error
	stop = func() error {
		stopOnce.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	return el, led, stop, nil
}

// lead is the leader's work: every leaderTick it reads the queue of the
// lock and logs it, until ctx is cancelled (leadership lost or Run
// ending). Only the leader does it, so the records come from one process.
func lead(ctx context.Context, s *etcdsync.Session, l distsync.Leadership, logger *slog.Logger) {
	t := time.NewTicker(leaderTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := s.Inspect(ctx, lockName)
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("leader: inspect", slog.String("name", lockName), slog.Any("error", err))
			}
			continue
		}
		logger.Info("leader: lock queue", slog.Uint64("term", l.Token()), slog.String("name", lockName),
			slog.Int("holders", len(st.Holders)), slog.Int("waiters", len(st.Waiters)))
	}
}

// lineWriter serializes the report's lines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (lw *lineWriter) printf(format string, args ...any) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	fmt.Fprintf(lw.w, format, args...)
}
