package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/etcdsync"
	"github.com/distsync/distsync/fallback/redissync"
	"github.com/distsync/distsync/fallback/zksync"
	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// connectTimeout bounds opening the Session: an unreachable backend is a
// backend error (173), not a wait.
const connectTimeout = 10 * time.Second

// tlsConfig returns the TLS configuration of c, or nil without TLS files.
func (c *config) tlsConfig() (*tls.Config, error) {
	if c.cacert == "" && c.cert == "" {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.cacert != "" {
		pem, err := os.ReadFile(c.cacert)
		if err != nil {
			return nil, usagef("--cacert: %v", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usagef("--cacert %s: no PEM certificate", c.cacert)
		}
	}
	if c.cert != "" {
		pair, err := tls.LoadX509KeyPair(c.cert, c.key)
		if err != nil {
			return nil, usagef("--cert/--key: %v", err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	return t, nil
}

// logger is the slog logger the Session writes to: stderr at c.logLevel.
func (c *config) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: c.logLevel}))
}

// holderIdentity is the identity the Session records and the child sees.
func (c *config) holderIdentity() string {
	if c.identity != "" {
		return c.identity
	}
	return distsync.DefaultIdentity()
}

// open opens the Session of c's backend, bounded by ctx and connectTimeout.
// Its errors are the library's (wrapping a sentinel) or a *usageError.
func open(ctx context.Context, c *config) (distsync.Session, error) {
	tc, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	log := c.logger()
	id := c.holderIdentity()
	switch c.backend {
	case "etcd":
		opts := []etcdsync.Option{etcdsync.WithTTL(c.ttl), etcdsync.WithIdentity(id), etcdsync.WithLogger(log)}
		if c.prefix != "" {
			opts = append(opts, etcdsync.WithPrefix(c.prefix))
		}
		return etcdsync.Dial(ctx, clientv3.Config{
			Endpoints:   c.endpoints,
			DialTimeout: connectTimeout,
			TLS:         tc,
			Username:    c.user,
			Password:    c.password,
			Logger:      zap.NewNop(), // distsync's own logger reports what matters
		}, opts...)
	case "redis":
		opts := []redissync.Option{redissync.WithTTL(c.ttl), redissync.WithIdentity(id), redissync.WithLogger(log)}
		if c.prefix != "" {
			opts = append(opts, redissync.WithPrefix(c.prefix))
		}
		return redissync.Dial(ctx, &redis.UniversalOptions{
			Addrs:      c.endpoints,
			MasterName: c.redisMaster,
			Username:   c.user,
			Password:   c.password,
			TLSConfig:  tc,
		}, opts...)
	case "zookeeper":
		opts := []zksync.Option{zksync.WithTTL(c.ttl), zksync.WithIdentity(id), zksync.WithLogger(log)}
		if c.prefix != "" {
			opts = append(opts, zksync.WithPrefix(c.prefix))
		}
		if c.user != "" {
			opts = append(opts, zksync.WithAuth("digest", []byte(c.user+":"+c.password)))
		}
		if tc != nil {
			opts = append(opts, zksync.WithDialer(func(network, addr string, timeout time.Duration) (net.Conn, error) {
				d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: tc}
				return d.Dial(network, addr)
			}))
		}
		return zksync.Dial(ctx, c.endpoints, opts...)
	}
	return nil, usagef("unknown backend %q", c.backend)
}

// describe names the backend and endpoints for error messages.
func (c *config) describe() string {
	return fmt.Sprintf("%s at %v", c.backend, c.endpoints)
}

// withSession runs f, for a verb that only reads or operates (inspect,
// leader, observe, unlock), with a Session opened under a context that a
// signal cancels, and closes the Session afterwards. end reports the
// signal that ended the context, if any.
func withSession(c *config, sigs *signals, f func(ctx context.Context, s distsync.Session, end func() os.Signal) int) int {
	ctx, end := sigs.watch(context.Background())
	defer end()
	s, err := open(ctx, c)
	if err != nil {
		return failOrSignal(c, err, end)
	}
	defer s.Close()
	return f(ctx, s, end)
}

// failOrSignal is fail, or 128+N when a signal N ended the wait.
func failOrSignal(c *config, err error, end func() os.Signal) int {
	if sig := end(); sig != nil {
		return signalExit(sig)
	}
	return fail(c, err)
}
