package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/config"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/server"
)

// TestGoldenImageEnrollsEachCloneOnce plays a golden image against a real
// server: two hosts with the same agent.yaml (an enrollment token baked
// in) and their own machine fingerprints each enroll once, and each
// agent.yaml loses the token, keeping the rest. A revoked host stays out:
// without the token it cannot enroll, and with one (MOLT_ENROLLMENT_TOKEN)
// the server refuses its fingerprint until an admin allows it; then it
// enrolls again.
func TestGoldenImageEnrollsEachCloneOnce(t *testing.T) {
	ctx := context.Background()
	srv, err := server.New(ctx, server.Options{DataDir: t.TempDir(), PollWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	admin, err := srv.CreateToken(ctx, protocol.RoleAdmin, "ops")
	if err != nil {
		t.Fatal(err)
	}
	et, err := srv.CreateEnrollToken(ctx, protocol.EnrollTokenRequest{Uses: 10})
	if err != nil {
		t.Fatal(err)
	}
	image := "# web image\nserver: " + hs.URL + "\n# Used once: the agent removes it.\nenrollment_token: " + et.Secret + "\nlabels:\n  role: web\n"

	type host struct {
		name, fp string
		home     home.Home
	}
	hosts := []*host{{name: "web-1", fp: "fp-web-1"}, {name: "web-2", fp: "fp-web-2"}}
	for _, h := range hosts {
		h.home = home.New(t.TempDir())
		if err := os.WriteFile(h.home.ConfigPath(), []byte(image), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	// run runs h's daemon, its configuration as molt-agent resolves it
	// (getenv adds the environment), until until holds or 5s pass.
	run := func(h *host, getenv func(string) string, until func() bool) {
		t.Helper()
		cfg, _, err := LoadConfig(h.home.ConfigPath(), true, getenv, Overrides{Name: h.name})
		if err != nil {
			t.Fatal(err)
		}
		cl, err := NewClient(ClientOptions{Server: hs.URL})
		if err != nil {
			t.Fatal(err)
		}
		ck := NewCheckin(CheckinOptions{Client: cl, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
			BusyPoll: 30 * time.Millisecond, MaxJitter: 5 * time.Millisecond, Watch: 20 * time.Millisecond, ReportEvery: 10 * time.Millisecond})
		d, err := New(Options{Home: h.home, Config: cfg, Updater: &ckUpdater{}, Orders: ck, Version: "1.4.0", Control: newFakeControl(),
			Fingerprint: func() (string, error) { return h.fp, nil }, Poll: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		go func() {
			for ctx.Err() == nil && !until() {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
		}()
		if err := d.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	enrolled := func(h *host, not string) func() bool {
		return func() bool {
			id, err := ReadIdentity(h.home)
			return err == nil && id.Enrolled() && id.ID != not
		}
	}
	noEnv := func(string) string { return "" }
	withToken := func(k string) string {
		if k == EnvEnrollmentToken {
			return et.Secret
		}
		return ""
	}
	api := func(method, path string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+admin.Secret)
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			_ = json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	events := func(id int) int {
		var evs protocol.Events
		api("GET", "/v1/events?after_id=0&limit=1000", &evs)
		n := 0
		for _, e := range evs.Events {
			if e.ID == id {
				n++
			}
		}
		return n
	}

	ids := map[*host]string{}
	for _, h := range hosts {
		run(h, noEnv, enrolled(h, ""))
		id, err := ReadIdentity(h.home)
		if err != nil || !id.Enrolled() {
			t.Fatalf("%s did not enroll: %+v %v", h.name, id, err)
		}
		ids[h] = id.ID
		b, _ := os.ReadFile(h.home.ConfigPath())
		if bytes.Contains(b, []byte(et.Secret)) || !bytes.Contains(b, []byte("# web image")) || !bytes.Contains(b, []byte("role: web")) {
			t.Fatalf("%s agent.yaml after enrollment:\n%s", h.name, b)
		}
		if c, err := config.Load(h.home.ConfigPath()); err != nil || c.Server != hs.URL || c.EnrollmentToken != "" {
			t.Fatalf("%s agent.yaml reads back as %+v, %v", h.name, c, err)
		}
		if fi, _ := os.Stat(h.home.ConfigPath()); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o640 {
			t.Errorf("%s agent.yaml mode %v, want 0640", h.name, fi.Mode().Perm())
		}
	}
	if ids[hosts[0]] == ids[hosts[1]] {
		t.Fatalf("both clones are agent %s", ids[hosts[0]])
	}

	web1 := hosts[0]
	if code := api("POST", "/v1/agents/"+ids[web1]+"/revoke", nil); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	// Its agent.yaml has no token left: refused, it drops its identity
	// and cannot enroll.
	start := time.Now()
	run(web1, noEnv, func() bool {
		id, _ := ReadIdentity(web1.home)
		return !id.Enrolled() && time.Since(start) > 300*time.Millisecond
	})
	if id, _ := ReadIdentity(web1.home); id.Enrolled() {
		t.Fatalf("the revoked host enrolled again without a token: %+v", id)
	}
	// With a token from the environment, the server refuses the host.
	run(web1, withToken, func() bool { return events(protocol.EvHostRefused) > 0 })
	if id, _ := ReadIdentity(web1.home); id.Enrolled() || events(protocol.EvHostRefused) != 1 {
		t.Fatalf("the revoked host with a token: %+v, %d host_refused events", id, events(protocol.EvHostRefused))
	}
	var a protocol.Agent
	if code := api("GET", "/v1/agents/"+ids[hosts[1]], &a); code != 200 || a.Status == protocol.AgentRevoked {
		t.Fatalf("the other clone: %d %+v", code, a)
	}

	if code := api("POST", "/v1/agents/"+ids[web1]+"/allow", nil); code != 200 {
		t.Fatalf("allow: %d", code)
	}
	run(web1, withToken, enrolled(web1, ids[web1]))
	id, _ := ReadIdentity(web1.home)
	if !id.Enrolled() || id.ID == ids[web1] || !strings.HasPrefix(id.ID, "a-") {
		t.Fatalf("the allowed host: %+v", id)
	}
	if events(protocol.EvHostAllowed) != 1 {
		t.Fatalf("%d host_allowed events", events(protocol.EvHostAllowed))
	}
}

// TestSetEnrolledForgetsToken: enrollment removes the token it used from
// agent.yaml and from memory, unless keep_enrollment_token is set; a
// token from the environment is forgotten in memory and the file stays.
func TestSetEnrolledForgetsToken(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        string
		keptInFile bool
		keptInMem  bool
	}{
		{"from agent.yaml", "enrollment_token: tok\n", "", false, false},
		{"kept", "enrollment_token: tok\nkeep_enrollment_token: true\n", "", true, true},
		{"from the environment", "enrollment_token: other\n", "tok", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := home.New(t.TempDir())
			if err := os.WriteFile(h.ConfigPath(), []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, _, err := LoadConfig(h.ConfigPath(), true, func(k string) string {
				if k == EnvEnrollmentToken {
					return tc.env
				}
				return ""
			}, Overrides{})
			if err != nil {
				t.Fatal(err)
			}
			d, err := New(Options{Home: h, Config: cfg, Updater: &ckUpdater{}, Fingerprint: func() (string, error) { return "fp", nil }})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.loadIdentity(); err != nil {
				t.Fatal(err)
			}
			if err := d.SetEnrolled("a-1", "molta_c"); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(h.ConfigPath())
			if inFile := strings.HasPrefix(string(b), "enrollment_token:") || strings.Contains(string(b), "\nenrollment_token:"); inFile != tc.keptInFile {
				t.Errorf("token in agent.yaml: %v, want %v:\n%s", inFile, tc.keptInFile, b)
			}
			if inMem := d.EnrollmentToken() != ""; inMem != tc.keptInMem {
				t.Errorf("token in memory: %v, want %v", inMem, tc.keptInMem)
			}
		})
	}
}
