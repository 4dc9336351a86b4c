package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// A workload's tree of small files prints one line per workload, the
// binaries and large files their progress in tenths.
func TestProgressPrinterWorkloads(t *testing.T) {
	var b bytes.Buffer
	p := newProgressPrinter(&b)
	p.download("agent", 0, 2<<20)
	p.download("agent", 2<<20, 2<<20)
	for i := range 300 {
		p.download(fmt.Sprintf("workload/exporter/lib/f%03d.py", i), 100, 100)
	}
	p.download("workload/exporter/conf/empty", 0, 0)
	p.download("workload/sensor/bin/sensor", 10, 10)
	p.download("workload/sensor/share/model.bin", 4<<20, 4<<20)
	want := []string{
		"  copy agent: 0% of 2.0 MiB",
		"  copy agent: 100% of 2.0 MiB",
		"  copy workload exporter",
		"  copy workload sensor",
		"  copy workload/sensor/share/model.bin: 100% of 4.0 MiB",
	}
	if got := strings.Split(strings.TrimRight(b.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("printed:\n%s\nwant:\n%s", b.String(), strings.Join(want, "\n"))
	}
}
