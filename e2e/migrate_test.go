//go:build unix

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/moltfleet/molt/internal/e2etest"
	"github.com/moltfleet/molt/internal/pgtest"
	"github.com/moltfleet/molt/internal/s3test"
	"github.com/moltfleet/molt/protocol"
)

// TestMigrateStore moves an installation from SQLite to PostgreSQL and
// S3 with molt admin migrate-store: three supervised agents and a
// completed run on SQLite; migrate-store refuses while the server runs;
// the server is stopped, its state and packs moved, and molt serve
// started on PostgreSQL and S3 (the local packs removed). The agents
// carry on checking in with the same ids and no enrollment, runs,
// history and events read the same, and a new run completes with its
// packs from S3.
func TestMigrateStore(t *testing.T) {
	needBuild(t)
	parallel(t)
	s := e2etest.StartServer(t, e2etest.ServerOptions{Version: newVersion})
	s.Import(e2etest.Pack(t, e2etest.PackOptions{Version: newVersion}))
	s.Import(e2etest.Pack(t, e2etest.PackOptions{Version: oldVersion}))
	token := s.EnrollToken(3)
	var hosts []*e2etest.Host
	for i := range 3 {
		h := s.NewHost(e2etest.HostOptions{Name: fmt.Sprintf("m%d", i), Version: oldVersion, Supervised: true, EnrollToken: token})
		h.Start()
		hosts = append(hosts, h)
	}
	ids := map[string]bool{}
	for _, h := range hosts {
		ids[h.WaitEnrolled(60*time.Second)] = true
	}
	run := s.Upgrade("--target", newVersion, "--all", "--max-concurrent", "3")
	if got := s.WaitRun(run.ID, 90*time.Second); got.Status != protocol.RunEndedOK {
		t.Fatalf("run on SQLite: %+v", got)
	}
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t, "molt")
	s3 := s3test.Start(t)
	art := "s3://" + s3.Bucket(t, "packs") + "/molt?region=us-east-1&endpoint=" + s3.Endpoint()
	creds := []string{"AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey}
	migrate := func() (string, string, error) {
		cmd := s.MoltCmd(context.Background(), "admin", "migrate-store", "--from", s.Data, "--to", dsn, "--artifacts", art, "--json")
		cmd.Env = append(cmd.Env, creds...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	if _, stderr, err := migrate(); err == nil || !strings.Contains(stderr, "stop it first") {
		t.Fatalf("migrate-store while molt serve runs: %v %q, want a refusal", err, stderr)
	}

	agentsBefore := s.Agents()
	runsBefore := s.Runs()
	historyBefore := s.History()
	eventsBefore := s.Events()
	s.Stop()
	stopped := time.Now()
	stdout, stderr, err := migrate()
	if err != nil {
		t.Fatalf("migrate-store: %v\n%s\n%s", err, stdout, stderr)
	}
	var res struct {
		Store struct {
			Rows    int64   `json:"rows"`
			Seconds float64 `json:"seconds"`
		} `json:"store"`
		Packs []struct {
			Version string `json:"version"`
			Skipped bool   `json:"skipped"`
		} `json:"packs"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || len(res.Packs) != 2 {
		t.Fatalf("migrate-store --json: %v\n%s", err, stdout)
	}
	t.Logf("migrate-store: %d rows in %.2fs, %d packs, %v after the server stopped", res.Store.Rows, res.Store.Seconds, len(res.Packs), time.Since(stopped).Round(time.Millisecond))
	// Only the bucket has the packs now.
	if err := os.RemoveAll(filepath.Join(s.Data, "packs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(s.Data, "molt.db"), filepath.Join(s.Data, "molt.db.moved")); err != nil {
		t.Fatal(err)
	}
	s.UseStore(dsn, art, creds...)
	s.Start()
	restarted := time.Now()

	e2etest.Eventually(t, 30*time.Second, "the agents checking in with the server on PostgreSQL", func() (bool, string) {
		n := 0
		for _, a := range s.Agents() {
			if ids[a.ID] && a.Status == protocol.AgentOnline && a.LastSeen.After(restarted) {
				n++
			}
		}
		return n == 3, fmt.Sprintf("%d of 3", n)
	})
	for _, h := range hosts {
		if !ids[h.ID()] {
			t.Errorf("%s has the id %q now, not its own", h.Name, h.ID())
		}
	}
	ignore := cmpopts.IgnoreFields(protocol.Agent{}, "LastSeen", "Status", "FreeDiskBytes")
	if d := cmp.Diff(agentsBefore, s.Agents(), ignore); d != "" {
		t.Errorf("agents (-SQLite +PostgreSQL):\n%s", d)
	}
	if d := cmp.Diff(runsBefore, s.Runs()); d != "" {
		t.Errorf("runs (-SQLite +PostgreSQL):\n%s", d)
	}
	if d := cmp.Diff(historyBefore, s.History()); d != "" {
		t.Errorf("history (-SQLite +PostgreSQL):\n%s", d)
	}
	eventsAfter := s.Events()
	if len(eventsAfter) < len(eventsBefore) {
		t.Fatalf("%d events after, %d before", len(eventsAfter), len(eventsBefore))
	}
	if d := cmp.Diff(eventsBefore, eventsAfter[:len(eventsBefore)]); d != "" {
		t.Errorf("events (-SQLite +PostgreSQL):\n%s", d)
	}
	for _, e := range eventsAfter[len(eventsBefore):] {
		if e.ID == protocol.EvAgentEnrolled {
			t.Errorf("an agent enrolled again: %+v", e)
		}
		if e.Seq <= eventsBefore[len(eventsBefore)-1].Seq {
			t.Errorf("event %+v reuses a seq of the SQLite log", e)
		}
	}

	// A new run on PostgreSQL, its packs from S3.
	run2 := s.Upgrade("--target", oldVersion, "--all", "--max-concurrent", "3")
	if run2.ID == run.ID {
		t.Fatalf("the new run has the id %s of the old", run2.ID)
	}
	if got := s.WaitRun(run2.ID, 90*time.Second); got.Status != protocol.RunEndedOK {
		t.Fatalf("run on PostgreSQL: %+v\n%s", got, s.Molt("history", "--run", run2.ID).Stdout)
	}
	for _, h := range hosts {
		if v := h.Current(); v != oldVersion {
			t.Errorf("%s runs %s, want %s", h.Name, v, oldVersion)
		}
		h.Stop()
	}
}
