package replica

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// PeerTransport reaches the other replicas over TLS. Replicas serve one
// name behind a load balancer and so usually one certificate: a peer is
// trusted when its certificate chains to the system's roots, to a
// certificate of this replica's own certificate file (its chain, or the
// certificate itself when replicas share it), or to caFile when given.
func PeerTransport(certFile, caFile string) (*http.Transport, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, f := range []string{certFile, caFile} {
		if f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("peer TLS: %w", err)
		}
		n := 0
		for block, rest := pem.Decode(b); block != nil; block, rest = pem.Decode(rest) {
			if block.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("peer TLS: %s: %w", f, err)
			}
			pool.AddCert(c)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("peer TLS: %s holds no certificate", f)
		}
	}
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true, // many agents' long polls over few connections
		TLSHandshakeTimeout:   5 * time.Second,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       2 * time.Minute,
		ResponseHeaderTimeout: 0, // long polls answer late by design; the client's deadline bounds them
	}, nil
}
