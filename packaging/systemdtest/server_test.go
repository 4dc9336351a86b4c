package systemdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/nspawn"
	"github.com/moltfleet/molt/internal/release"
)

// selfSigned is a certificate for 127.0.0.1 and its key, in PEM.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "molt-server test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

// healthz is the status of GET https://addr/healthz trusting cert, or 0.
func healthz(addr string, cert []byte) int {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cert)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Timeout: time.Second, Transport: tr}).Get("https://" + addr + "/healthz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// uid is the owner of the container's process or file (host path p).
func uid(t *testing.T, p string) uint32 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Uid
}

// The server's package under systemd: installed without a configuration
// it enables the unit and starts nothing; with /etc/molt/server.yaml the
// unit runs molt serve as the system user molt on /var/lib/molt and
// answers /healthz; systemd restarts it after a kill -9; a package
// upgrade restarts it on the new version; removing the package stops it.
func TestServerPackageUnderSystemd(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a container and installs the server's package (-short)")
	}
	need(t, nspawn.Systemd)
	const srvUnit = "molt-server.service"
	debS := deb(t, vA, release.ServerPackage)
	m := boot(t, nspawn.Systemd)
	out := m.install(debS)
	if !strings.Contains(out, "molt-server: enabled; write /etc/molt/server.yaml") {
		t.Fatalf("dpkg -i without server.yaml:\n%s", out)
	}
	if st := m.show(srvUnit, "UnitFileState") + " " + m.show(srvUnit, "ActiveState"); st != "enabled inactive" {
		t.Fatalf("%s without server.yaml: %s, want enabled inactive", srvUnit, st)
	}

	addr := e2etest.FreeAddr(t)
	cert, key := selfSigned(t)
	m.write("/etc/molt/tls/server.pem", 0o644, cert)
	m.write("/etc/molt/tls/server.key", 0o600, key)
	m.run("chown", "molt:molt", "/etc/molt/tls/server.key")
	m.write("/etc/molt/server.yaml", 0o644, []byte(fmt.Sprintf(
		"listen: %s\ntls_cert: /etc/molt/tls/server.pem\ntls_key: /etc/molt/tls/server.key\nlog_level: info\n", addr)))
	m.run("systemctl", "start", srvUnit)
	took := waitFor(t, 30*time.Second, "molt serve answers /healthz", func() (bool, string) {
		code := healthz(addr, cert)
		return code == 200, fmt.Sprintf("%d; %s", code, m.show(srvUnit, "ActiveState"))
	})
	t.Logf("molt-server answered /healthz %s after systemctl start", took.Round(time.Millisecond))

	molt := strings.TrimSpace(m.run("id", "-u", "molt"))
	ps := m.procs("molt")
	if len(ps) != 1 || !strings.Contains(ps[0].Cmdline, "serve --config /etc/molt/server.yaml --data /var/lib/molt") {
		t.Fatalf("want one molt serve: %s", pids(ps))
	}
	if u := uid(t, fmt.Sprintf("/proc/%d", ps[0].PID)); fmt.Sprint(u) != molt {
		t.Errorf("molt serve runs as uid %d, want the user molt (%s)", u, molt)
	}
	for _, p := range []string{"/var/lib/molt", "/var/lib/molt/molt.db", "/var/lib/molt/admin.token"} {
		if u := uid(t, m.Path(p)); fmt.Sprint(u) != molt {
			t.Errorf("%s belongs to uid %d, want the user molt (%s)", p, u, molt)
		}
	}

	if err := syscall.Kill(ps[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "systemd restarts molt serve after kill -9", func() (bool, string) {
		now := m.procs("molt")
		return len(now) == 1 && now[0].PID != ps[0].PID && healthz(addr, cert) == 200, pids(now)
	})

	// A package upgrade restarts the server (the package owns
	// /usr/bin/molt): a new process of the new version, healthy.
	before := m.procs("molt")
	m.install(deb(t, vB, release.ServerPackage))
	waitFor(t, 30*time.Second, "molt serve restarted by the package upgrade", func() (bool, string) {
		now := m.procs("molt")
		return len(now) == 1 && now[0].PID != before[0].PID && healthz(addr, cert) == 200, pids(now)
	})
	if v := m.run("/usr/bin/molt", "version"); !strings.Contains(v, vB) {
		t.Errorf("molt version after the package upgrade: %s", v)
	}

	out = m.run("dpkg", "--remove", "molt-server")
	if left := m.procs("molt"); len(left) > 0 {
		t.Fatalf("dpkg --remove left molt serve running: %s\n%s", pids(left), out)
	}
	if st := m.show(srvUnit, "LoadState"); st != "not-found" {
		t.Errorf("%s after dpkg --remove: LoadState=%s, want not-found", srvUnit, st)
	}
	if _, ok := m.try("test", "-f", "/var/lib/molt/molt.db"); !ok {
		t.Errorf("dpkg --remove removed the database; it is kept")
	}
}
