//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/supervisor/control"
)

// TestRunReadyBeforeSystemRoots: an agent with a server and a ca_file
// says ready without loading the system's roots (tens of milliseconds of
// reading /etc/ssl): they are loaded at the first request. The system's
// roots here are a FIFO nobody writes, so an agent that loads them on its
// way to ready never gets there. ca_file itself is still read and checked
// before ready: a file without a certificate exits 12.
func TestRunReadyBeforeSystemRoots(t *testing.T) {
	needE2E(t)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	writeTestCA(t, ca)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "roots.fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	rootsEnv := []string{"SSL_CERT_FILE=" + fifo, "SSL_CERT_DIR=" + filepath.Join(dir, "no-certs")}
	// Nothing listens on port 1: the agent's check-ins fail, and ready
	// must not wait for them.
	server := "server: https://127.0.0.1:1\n"

	t.Run("ready", func(t *testing.T) {
		h := newHome(t, pubKey, server, "ca_file: "+ca+"\n")
		cmd := exec.Command(cliBin(), "run", "--home", h.Dir)
		cmd.Env = append(append(os.Environ(), "MOLT_HOME=", control.EnvSupervised+"=1"), rootsEnv...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		att, err := control.Attach(cmd)
		if err != nil {
			t.Fatal(err)
		}
		err = cmd.Start()
		ch := att.Started()
		if err != nil {
			ch.Close()
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		defer func() {
			ch.Close()
			cmd.Process.Kill()
			<-done
			if t.Failed() {
				t.Logf("agent output:\n%s", out.String())
			}
		}()
		select {
		case m := <-ch.Messages:
			if m != control.MsgReady {
				t.Fatalf("first message %q, want ready", m)
			}
		case err := <-done:
			t.Fatalf("agent exited before ready: %v", err)
		case <-time.After(20 * time.Second):
			t.Fatal("no ready within 20s: the agent loads the system's roots on its way to ready")
		}
		// The check-in loop now waits on the FIFO for good: the deferred
		// kill ends the agent.
	})

	t.Run("bad ca_file exits 12", func(t *testing.T) {
		h := newHome(t, pubKey, server, "ca_file: "+notPEM+"\n")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, cliBin(), "run", "--home", h.Dir)
		cmd.Env = append(append(os.Environ(), "MOLT_HOME="), rootsEnv...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 12 {
			t.Fatalf("run: %v, want exit 12\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "ca_file") {
			t.Errorf("stderr %q does not name ca_file", stderr.String())
		}
	})
}

// writeTestCA writes a self-signed CA certificate (PEM) to path.
func writeTestCA(t *testing.T, path string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}
