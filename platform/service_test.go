package platform

import (
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moltfleet/molt/internal/testtool"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func goldenSpec(system string) ServiceSpec {
	if system == SystemWindows {
		return ServiceSpec{
			Name:      "molt-supervisor",
			Home:      `C:\ProgramData\molt`,
			Exe:       `C:\ProgramData\molt\bin\molt-supervisor.exe`,
			StopGrace: 30 * time.Second,
		}
	}
	return ServiceSpec{
		Name:      "molt-supervisor",
		Home:      "/opt/molt",
		Exe:       "/opt/molt/bin/molt-supervisor",
		StopGrace: 30 * time.Second,
	}
}

// TestRenderServiceGolden pins every definition we install. Regenerate with
// go test ./platform -run TestRenderServiceGolden -update.
func TestRenderServiceGolden(t *testing.T) {
	for _, system := range ServiceSystems {
		t.Run(system, func(t *testing.T) {
			def, err := RenderService(system, goldenSpec(system))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "service", system+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(def.Text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), def.Text); diff != "" {
				t.Errorf("%s definition differs from %s (-want +got):\n%s", system, golden, diff)
			}
		})
	}
}

// TestRenderServiceContract checks what the definitions must do, so that a
// golden file regenerated without care still cannot lose it.
func TestRenderServiceContract(t *testing.T) {
	tests := []struct {
		system string
		want   []string
	}{
		{SystemSystemd, []string{
			`ExecStart="/opt/molt/bin/molt-supervisor" "run" "--home" "/opt/molt"`,
			"Restart=always", "RestartSec=1s", "KillMode=mixed", "TimeoutStopSec=45s", "StartLimitIntervalSec=0",
		}},
		{SystemSysV, []string{"restart_delay=1", "stop_timeout=45", "kill -TERM \"$pid\"", "setsid", "exit 3"}},
		{SystemRCS, []string{"restart_delay=1", "stop_timeout=45"}},
		{SystemOpenRC, []string{"supervisor=supervise-daemon", "respawn_delay=1", "respawn_max=0", `retry="TERM/45/KILL/5"`}},
		{SystemUpstart, []string{"respawn\n", "respawn limit unlimited", "kill timeout 45"}},
		{SystemProcd, []string{"procd_set_param respawn 3600 1 0", "term_timeout 45"}},
		{SystemLaunchd, []string{"<key>KeepAlive</key>\n\t<true/>", "<integer>45</integer>", "<key>ThrottleInterval</key>\n\t<integer>1</integer>"}},
		{SystemFreeBSD, []string{"-r -R 1", "name=molt_supervisor", `: ${molt_supervisor_enable:="YES"}`}},
		{SystemSMF, []string{`timeout_seconds="45"`, "kill -TERM"}},
		{SystemAIX, []string{"startsrc -s molt-supervisor", "stopsrc -s molt-supervisor"}},
		{SystemWindows, []string{`"on_non_crash_failures": true`, `"delay": "1s"`, `"type": "restart"`}},
	}
	for _, tt := range tests {
		t.Run(tt.system, func(t *testing.T) {
			def, err := RenderService(tt.system, goldenSpec(tt.system))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(def.Text, w) {
					t.Errorf("definition lacks %q:\n%s", w, def.Text)
				}
			}
			if strings.Contains(def.Text, "RestartSec=120") {
				t.Errorf("kardianos's 120 s restart delay leaked in")
			}
		})
	}
}

// Two homes on one host share no file: not the definition, the pid file
// or the log.
func TestRenderServiceTwoHomes(t *testing.T) {
	for _, system := range ServiceSystems {
		if system == SystemWindows {
			continue
		}
		t.Run(system, func(t *testing.T) {
			a := ServiceSpec{Name: ServiceNameFor("/srv/a/molt"), Home: "/srv/a/molt", Exe: "/srv/a/molt/bin/molt-supervisor"}
			b := ServiceSpec{Name: ServiceNameFor("/srv/b/molt"), Home: "/srv/b/molt", Exe: "/srv/b/molt/bin/molt-supervisor"}
			da, err := RenderService(system, a)
			if err != nil {
				t.Fatal(err)
			}
			db, err := RenderService(system, b)
			if err != nil {
				t.Fatal(err)
			}
			if da.Path == db.Path {
				t.Errorf("both homes install %s", da.Path)
			}
			if strings.Contains(da.Text, "/srv/b") || strings.Contains(db.Text, "/srv/a") {
				t.Errorf("a definition names the other home")
			}
			for _, shared := range []string{"/var/run/molt-supervisor.pid", "/var/log/"} {
				if strings.Contains(da.Text, shared) {
					t.Errorf("definition uses the shared path %s", shared)
				}
			}
		})
	}
}

func TestServiceNameFor(t *testing.T) {
	tests := []struct{ home, want string }{
		{osDefaultHome(), "molt-supervisor"},
		{osDefaultHome() + string(filepath.Separator), "molt-supervisor"},
		{"/srv/b/molt", "molt-supervisor-srv-b-molt"},
		{"/srv/Tenant A/molt", "molt-supervisor-srv-tenant-a-molt"},
		{"/", "molt-supervisor-root"},
		{"/" + strings.Repeat("x", 100), "molt-supervisor-" + strings.Repeat("x", 39) + "-"},
	}
	if runtime.GOOS == "windows" || runtime.GOOS == "aix" {
		t.Skip("the table is for the Unix defaults and name limit")
	}
	for _, tt := range tests {
		got := ServiceNameFor(tt.home)
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("ServiceNameFor(%q) = %q, want prefix %q", tt.home, got, tt.want)
		}
		if err := ValidServiceName(got, SystemSysV); err != nil {
			t.Errorf("ServiceNameFor(%q) = %q: %v", tt.home, got, err)
		}
		if len(got) > maxServiceName {
			t.Errorf("ServiceNameFor(%q) = %q: longer than %d", tt.home, got, maxServiceName)
		}
	}
	long1, long2 := "/"+strings.Repeat("x", 100)+"/a", "/"+strings.Repeat("x", 100)+"/b"
	if ServiceNameFor(long1) == ServiceNameFor(long2) {
		t.Errorf("two long homes get one name %q", ServiceNameFor(long1))
	}
}

func TestServiceSpecValidate(t *testing.T) {
	ok := goldenSpec(SystemSysV)
	tests := []struct {
		name   string
		system string
		edit   func(*ServiceSpec)
		want   string // substring of the error; "" for none
	}{
		{"ok", SystemSysV, func(*ServiceSpec) {}, ""},
		{"space in home", SystemSystemd, func(s *ServiceSpec) { s.Home = "/srv/my molt" }, ""},
		{"relative home", SystemSysV, func(s *ServiceSpec) { s.Home = "molt" }, "not an absolute path"},
		{"quote in home", SystemSysV, func(s *ServiceSpec) { s.Home = "/srv/it's" }, "cannot go into a service definition"},
		{"dollar in exe", SystemSystemd, func(s *ServiceSpec) { s.Exe = "/srv/$x/molt-supervisor" }, "cannot go into"},
		{"template in home", SystemSysV, func(s *ServiceSpec) { s.Home = "/srv/{{x}}" }, "cannot go into"},
		{"newline in home", SystemSysV, func(s *ServiceSpec) { s.Home = "/srv/a\nb" }, "cannot go into"},
		{"backslash on unix", SystemSysV, func(s *ServiceSpec) { s.Home = `/srv/a\b` }, "cannot go into"},
		{"windows path", SystemWindows, func(s *ServiceSpec) {
			s.Home, s.Exe = `C:\Program Files (x86)\molt`, `C:\Program Files (x86)\molt\bin\molt-supervisor.exe`
		}, ""},
		{"unix path on windows", SystemWindows, func(s *ServiceSpec) {}, "not an absolute path"},
		{"empty name", SystemSysV, func(s *ServiceSpec) { s.Name = "" }, "want 1 to 64"},
		{"slash in name", SystemSysV, func(s *ServiceSpec) { s.Name = "a/b" }, "use letters"},
		{"dash first", SystemSysV, func(s *ServiceSpec) { s.Name = "-x" }, "use letters"},
		{"long name on AIX", SystemAIX, func(s *ServiceSpec) { s.Name = strings.Repeat("m", 30) }, "want 1 to 29"},
		{"negative grace", SystemSysV, func(s *ServiceSpec) { s.StopGrace = -time.Second }, "stop grace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.edit(&s)
			err := s.Validate(tt.system)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestStopTimeout(t *testing.T) {
	tests := []struct {
		grace, want time.Duration
	}{
		{0, 45 * time.Second},
		{30 * time.Second, 45 * time.Second},
		{2 * time.Minute, 135 * time.Second},
	}
	for _, tt := range tests {
		if got := (ServiceSpec{StopGrace: tt.grace}).StopTimeout(); got != tt.want {
			t.Errorf("StopTimeout with grace %s = %s, want %s", tt.grace, got, tt.want)
		}
	}
}

// The shell definitions parse as shell and the XML ones as XML.
func TestRenderServiceSyntax(t *testing.T) {
	sh := testtool.Need(t, "sh", "a POSIX shell checks the rendered scripts")
	homes := []string{"/opt/molt", "/srv/Tenant A/molt"}
	for _, system := range ServiceSystems {
		for _, h := range homes {
			spec := ServiceSpec{Name: "molt-b", Home: h, Exe: h + "/bin/molt-supervisor"}
			if system == SystemWindows {
				continue
			}
			def, err := RenderService(system, spec)
			if err != nil {
				t.Fatalf("%s, home %q: %v", system, h, err)
			}
			switch system {
			case SystemSysV, SystemRCS, SystemProcd, SystemOpenRC, SystemFreeBSD, SystemAIX:
				cmd := exec.Command(sh, "-n")
				cmd.Stdin = strings.NewReader(def.Text)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s, home %q: sh -n: %v\n%s", system, h, err, out)
				}
			case SystemLaunchd, SystemSMF:
				d := xml.NewDecoder(strings.NewReader(def.Text))
				d.Strict = true
				for {
					_, err := d.Token()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Errorf("%s, home %q: not well-formed XML: %v", system, h, err)
						break
					}
				}
			}
		}
	}
}

// The SysV script's own status answers as LSB wants, with the pid file it
// names, without installing anything.
func TestSysVScriptStatus(t *testing.T) {
	testtool.Need(t, "sh", "a POSIX shell runs the SysV script")
	dir := t.TempDir()
	spec := ServiceSpec{Name: "molt-test", Home: dir, Exe: dir + "/bin/molt-supervisor"}
	def, err := RenderService(SystemSysV, spec)
	if err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(dir, "test.pid")
	script := filepath.Join(dir, "molt-test")
	text := strings.Replace(def.Text, "pidfile='/var/run/molt-test.pid'", "pidfile='"+pidfile+"'", 1)
	if err := os.WriteFile(script, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	status := func() (string, int) {
		out, err := exec.Command(script, "status").CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	if out, code := status(); code != 3 || out != "Stopped\n" {
		t.Fatalf("no pid file: exit %d, %q", code, out)
	}
	// A live process that is not the respawn loop: a pid file from
	// before a reboot.
	if err := os.WriteFile(pidfile, []byte(fmt.Sprintln(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := status(); code != 3 || out != "Stopped\n" {
		t.Fatalf("pid of another process: exit %d, %q", code, out)
	}
	loop := exec.Command("sh", "-c", "sleep 30; :", "sh", "respawn")
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	defer loop.Wait()
	defer loop.Process.Kill()
	if err := os.WriteFile(pidfile, []byte(fmt.Sprintln(loop.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := status(); code != 0 || out != fmt.Sprintf("Running (pid %d)\n", loop.Process.Pid) {
		t.Fatalf("live loop: exit %d, %q", code, out)
	}
	if st, err := scriptStatus(script); err != nil || st != ServiceRunning {
		t.Fatalf("scriptStatus = %v, %v", st, err)
	}
	if err := os.Remove(pidfile); err != nil {
		t.Fatal(err)
	}
	if st, err := scriptStatus(script); err != nil || st != ServiceStopped {
		t.Fatalf("scriptStatus = %v, %v", st, err)
	}
	if st, err := scriptStatus(filepath.Join(dir, "absent")); err != nil || st != ServiceNotInstalled {
		t.Fatalf("scriptStatus of a missing script = %v, %v", st, err)
	}
}
