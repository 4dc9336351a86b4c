package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/internal/buildinfo"
	"github.com/moltfleet/molt/updater"
	"github.com/moltfleet/molt/updater/pack"
	"github.com/moltfleet/molt/updater/pack/packtest"
)

// The daemon's updater stages a pack with a workload from a file: the
// binaries and a large workload file are download steps of their own, a
// tree of small files only moves the counters.
func TestUpdaterProgressOfWorkloadFiles(t *testing.T) {
	plat := buildinfo.Platform()
	pub, sk, err := pack.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	w := packtest.ShellWorkload("exporter", "#!/bin/sh\nexec sleep 1000\n")
	for i := range 50 {
		w.Files[fmt.Sprintf("lib/f%02d.py", i)] = []byte(strings.Repeat("x", 100+i))
	}
	w.Files["share/model.bin"] = make([]byte, stepFileSize+1)
	p := filepath.Join(t.TempDir(), "1.1.0.pack")
	files := packtest.Files{plat: {pack.RoleAgent: []byte("agent 1.1.0\n"), pack.RoleSupervisor: []byte("supervisor 1.1.0\n")}}
	packtest.GoodWithWorkloads(t, p, "1.1.0", files, packtest.Workloads{plat: {w}}, sk)

	h := home.New(t.TempDir())
	if err := h.WriteActive(home.Active{Current: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	u := NewUpdater(updater.Options{Home: h, Keys: []pack.Key{pub}, FreeSpace: func(string) (uint64, error) { return 1 << 40, nil }})
	var steps []string
	counted := 0
	err = u.Prepare(context.Background(), Order{ID: "local-1", Version: "1.1.0", PackFile: p, Progress: func(pr Progress) {
		switch {
		case pr.Step == "download" && pr.Done == pr.Total:
			steps = append(steps, pr.Detail)
		case pr.Step == "" && pr.Total > 0:
			counted++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(steps, ","), "agent,supervisor,workload/exporter/share/model.bin"; got != want {
		t.Errorf("download steps %s, want %s", got, want)
	}
	if counted < 51 {
		t.Errorf("%d counter updates for 51 small files", counted)
	}
	if !h.IsValid("1.1.0") {
		t.Error("1.1.0 not staged")
	}
}
