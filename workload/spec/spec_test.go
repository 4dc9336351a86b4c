package spec

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const hash = "0000000000000000000000000000000000000000000000000000000000000000"

func good() Workload {
	return Workload{
		Spec: Spec{
			Name: "exporter", Command: "bin/exporter", Args: []string{"-listen", "127.0.0.1:9464"},
			Env:   map[string]string{"GOMAXPROCS": "1"},
			Ready: Ready{Probe: Probe{HTTP: "http://127.0.0.1:9464/metrics"}, Within: Duration(30 * time.Second)},
			Live:  &Live{Probe: Probe{TCP: "127.0.0.1:9464"}, Interval: Duration(10 * time.Second), Failures: 3},
			Busy:  &Busy{Probe: Probe{Command: []string{"bin/busy"}}},
		},
		Files: []File{
			{Path: "bin/exporter", Size: 10, SHA256: hash, Mode: "0755"},
			{Path: "bin/busy", Size: 0, SHA256: hash, Mode: "0755"},
			{Path: "conf/default.yaml", Size: 3, SHA256: hash, Mode: "0644"},
		},
	}
}

func TestCheck(t *testing.T) {
	if err := good().Check(); err != nil {
		t.Fatalf("a good workload: %v", err)
	}
	tests := []struct {
		name   string
		change func(w *Workload)
		want   string
	}{
		{"bad name", func(w *Workload) { w.Spec.Name = "Exporter!" }, `name "Exporter!"`},
		{"command outside", func(w *Workload) { w.Spec.Command = "../x" }, `command "../x": not a clean relative path`},
		{"command absolute", func(w *Workload) { w.Spec.Command = "/bin/sh" }, `command "/bin/sh"`},
		{"command not a file", func(w *Workload) { w.Spec.Command = "bin/other" }, `command "bin/other" is not one of the workload's files`},
		{"command not executable", func(w *Workload) { w.Spec.Command = "conf/default.yaml" }, "is not executable (mode 0644)"},
		{"file with ..", func(w *Workload) { w.Files[2].Path = "conf/../../etc/passwd" }, "not a clean relative path"},
		{"file with backslash", func(w *Workload) { w.Files[2].Path = `conf\x` }, "not a clean relative path"},
		{"file twice by case", func(w *Workload) { w.Files[2].Path = "BIN/exporter" }, "named twice"},
		{"file and directory", func(w *Workload) { w.Files[2].Path = "bin" }, `"bin" is both a file and a directory`},
		{"setuid", func(w *Workload) { w.Files[0].Mode = "4755" }, "mode"},
		{"bad hash", func(w *Workload) { w.Files[0].SHA256 = "xyz" }, "sha256"},
		{"no check", func(w *Workload) { w.Spec.Ready = Ready{} }, "ready: no check"},
		{"two checks", func(w *Workload) { w.Spec.Ready.TCP = "127.0.0.1:1" }, "ready: more than one check"},
		{"running as live", func(w *Workload) { w.Spec.Live = &Live{Probe: Probe{Running: Duration(time.Second)}} }, `live: check kind "running" is not allowed here`},
		{"tcp busy", func(w *Workload) { w.Spec.Busy = &Busy{Probe: Probe{TCP: "127.0.0.1:1"}} }, `busy: check kind "tcp" is not allowed here`},
		{"bad url", func(w *Workload) { w.Spec.Ready.HTTP = "ftp://x" }, "not an http(s) URL"},
		{"molt env", func(w *Workload) { w.Spec.Env = map[string]string{"MOLT_HOME": "/"} }, "names starting with MOLT_ are set by molt"},
		{"control in arg", func(w *Workload) { w.Spec.Args = []string{"\x1b[2J"} }, "args[0]: contains a control character"},
		{"too large", func(w *Workload) {
			w.Spec.Args = []string{strings.Repeat("a", 4000), strings.Repeat("b", 4000), strings.Repeat("c", 4000), strings.Repeat("d", 4000), strings.Repeat("e", 4000)}
		}, "spec is larger than 16384 bytes"},
		{"bad signal", func(w *Workload) { w.Spec.Stop.Signal = "SIGSTOP" }, `stop: signal "SIGSTOP"`},
		{"bad policy", func(w *Workload) { w.Spec.Restart.Policy = "sometimes" }, `restart: policy "sometimes"`},
		{"backoff", func(w *Workload) {
			w.Spec.Restart.BackoffMin, w.Spec.Restart.BackoffMax = Duration(time.Minute), Duration(time.Second)
		}, "backoff_max 1s is below backoff_min 1m0s"},
		{"negative duration", func(w *Workload) { w.Spec.Ready.Within = Duration(-time.Second) }, "within: -1s: out of range"},
		{"no files", func(w *Workload) { w.Files = nil }, "no files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := good()
			w.Files = append([]File(nil), w.Files...)
			tt.change(&w)
			err := w.Check()
			if !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check() = %v, want ErrBadSpec containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("the error is more than one line: %q", err)
			}
		})
	}
}

func TestCheckAllNamesTwice(t *testing.T) {
	if err := CheckAll([]Workload{good(), good()}); err == nil || !strings.Contains(err.Error(), "named twice") {
		t.Fatalf("CheckAll of two workloads named alike = %v", err)
	}
}

// The identity changes with anything that changes what runs, and not
// with how the spec spells a default.
func TestIdentity(t *testing.T) {
	a := good()
	b := good()
	b.Spec.Restart.Policy = RestartAlways // the default, spelt out
	if a.Identity() != b.Identity() {
		t.Error("spelling out a default changed the identity")
	}
	b.Files = []File{a.Files[2], a.Files[0], a.Files[1]}
	if a.Identity() != b.Identity() {
		t.Error("the files' order changed the identity")
	}
	for name, change := range map[string]func(w *Workload){
		"args": func(w *Workload) { w.Spec.Args = []string{"-listen", "127.0.0.1:9465"} },
		"hash": func(w *Workload) {
			w.Files = append([]File(nil), w.Files...)
			w.Files[0].SHA256 = strings.Repeat("1", 64)
		},
		"mode": func(w *Workload) { w.Files = append([]File(nil), w.Files...); w.Files[2].Mode = "0600" },
		"live": func(w *Workload) { w.Spec.Live = nil },
	} {
		c := good()
		change(&c)
		if c.Identity() == a.Identity() {
			t.Errorf("changing %s kept the identity", name)
		}
	}
}

func TestCheckWindows(t *testing.T) {
	if err := good().CheckWindows(); err != nil {
		t.Fatalf("a good workload: %v", err)
	}
	for _, p := range []string{"conf/CON", "aux.txt", "bin/com1.dll", "lpt9", "conf/name.", "conf/name ", `conf/a?b`} {
		w := good()
		w.Files = append(w.Files, File{Path: p, Size: 1, SHA256: hash, Mode: "0644"})
		if err := w.CheckWindows(); !errors.Is(err, ErrBadSpec) || !strings.Contains(err.Error(), "cannot be a file name on Windows") {
			t.Errorf("%q: CheckWindows() = %v", p, err)
		}
	}
	w := good()
	w.Files = append(w.Files, File{Path: "lib/console.js", Size: 1, SHA256: hash, Mode: "0644"}, File{Path: "auxiliary", Size: 1, SHA256: hash, Mode: "0644"})
	if err := w.CheckWindows(); err != nil {
		t.Errorf("names that only start like a device: %v", err)
	}
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	if err := d.UnmarshalJSON([]byte(`"250ms"`)); err != nil || d.D() != 250*time.Millisecond {
		t.Errorf("250ms: %v %v", d, err)
	}
	if err := d.UnmarshalJSON([]byte(`30`)); err == nil || !strings.Contains(err.Error(), `such as "30s"`) {
		t.Errorf("a number: %v", err)
	}
	if b, _ := Duration(90 * time.Second).MarshalJSON(); string(b) != `"1m30s"` {
		t.Errorf("marshal: %s", b)
	}
}

func TestParseInstalled(t *testing.T) {
	if _, err := ParseInstalled([]byte(`{"version":"1.0.0","platform":"linux/amd64","workloads":[],"extra":1}`)); !errors.Is(err, ErrBadSpec) {
		t.Errorf("an unknown field: %v", err)
	}
	if in, err := ParseInstalled([]byte(`{"version":"1.0.0","platform":"linux/amd64","workloads":[]}`)); err != nil || in.Version != "1.0.0" {
		t.Errorf("no workloads: %+v %v", in, err)
	}
}
