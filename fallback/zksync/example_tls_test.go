package zksync_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log"
	"net"
	"time"

	"github.com/distsync/distsync/fallback/zksync"
)

// A Session over TLS: go-zookeeper dials each server through a tls.Dialer,
// which checks the server's certificate against its host name. The server
// listens for TLS on its secureClientPort. (Compiled, not run: the test
// server has no TLS port.)
func ExampleWithDialer() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := x509.SystemCertPool()
	if err != nil {
		log.Fatal(err)
	}
	tlsConf := &tls.Config{RootCAs: pool}
	dial := func(network, addr string, timeout time.Duration) (net.Conn, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: tlsConf}
		return d.Dial(network, addr)
	}
	s, err := zksync.Dial(ctx, []string{"zk1.example.com:2281"}, zksync.WithDialer(dial))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
}
