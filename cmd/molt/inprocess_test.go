package main

import (
	"context"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/moltfleet/molt/server"
)

// inProcessServer runs a real server in the test process over HTTPS, as
// the CLI's tests talk to one: o.DataDir defaults to DIR/data, the CLI
// reads no user config (XDG_CONFIG_HOME is DIR/noconfig), and the TLS
// certificate is written to DIR/ca.pem, the file to pass as --ca. Both are
// closed when the test ends.
func inProcessServer(t *testing.T, dir string, o server.Options) (*server.Server, *httptest.Server, string) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "noconfig"))
	if o.DataDir == "" {
		o.DataDir = filepath.Join(dir, "data")
	}
	srv, err := server.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hs := httptest.NewTLSServer(srv.Handler())
	t.Cleanup(hs.Close)
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, hs, ca
}
