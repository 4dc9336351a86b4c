package docs

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moltfleet/molt/agent"
	"github.com/moltfleet/molt/home"
	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/protocol"
	"github.com/moltfleet/molt/supervisor"
)

const designPath = "design.md"

func TestDesign(t *testing.T) {
	b, err := os.ReadFile(designPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)

	t.Run("host layout", func(t *testing.T) {
		listed := map[string]bool{}
		for _, line := range codeBlock(t, section(t, doc, "## Host layout")) {
			if line == "" || line[0] == ' ' {
				continue
			}
			listed[placeholder(strings.TrimSuffix(strings.Fields(line)[0], "/"))] = true
		}
		for what, rel := range homePaths(t) {
			if !listed[rel] {
				t.Errorf("%s: the host layout lacks %s (%s); write arguments as <v>, <name> or <id>", designPath, rel, what)
			}
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		sec := section(t, doc, "## Exit codes")
		code := consts(t, "../supervisor/control", "Exit")
		rows := map[string]string{}
		for _, r := range tableRows(sec) {
			if _, err := strconv.Atoi(r[0]); err != nil || len(r) < 2 {
				continue
			}
			name := ticked(r[1])
			if prev, dup := rows[name]; dup {
				t.Errorf("%s: %s is listed twice (%s and %s)", designPath, name, prev, r[0])
			}
			rows[name] = r[0]
		}
		for name, v := range code {
			if rows[name] != v {
				t.Errorf("%s: the exit-code table has %s as %q; supervisor/control says %s", designPath, name, rows[name], v)
			}
		}
		for name, v := range rows {
			if _, ok := code[name]; !ok {
				t.Errorf("%s: the exit-code table lists %s = %s, which supervisor/control does not define", designPath, name, v)
			}
		}
	})

	t.Run("control channel", func(t *testing.T) {
		sec := section(t, doc, "## Exit codes")
		for _, prefix := range []string{"Msg", "Env"} {
			for name, v := range consts(t, "../supervisor/control", prefix) {
				if !strings.Contains(sec, "`"+v+"`") {
					t.Errorf("%s: control.%s (`%s`) is not in the exit-code section", designPath, name, v)
				}
			}
		}
	})

	tables := []struct {
		name, heading, dir, prefix string
	}{
		{"updater phases", "### On the host", "../updater", "Phase"},
		{"deployment kinds", "### Deployment kinds", "../protocol", "Kind"},
		{"deployment states", "### Deployment states", "../protocol", "State"},
		{"run statuses", "### Run statuses", "../protocol", "Run"},
		{"roles", "### Roles", "../protocol", "Role"},
	}
	for _, tc := range tables {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for _, v := range consts(t, tc.dir, tc.prefix) {
				if v != "" {
					want = append(want, v)
				}
			}
			got := tableKeys(section(t, doc, tc.heading))
			sort.Strings(want)
			gotSorted := slices.Sorted(slices.Values(got))
			if !slices.Equal(gotSorted, want) {
				t.Errorf("%s, %q: the table lists %q; the %s* constants of %s are %q", designPath, tc.heading, gotSorted, tc.prefix, tc.dir, want)
			}
		})
	}

	t.Run("deployment state order", func(t *testing.T) {
		got := tableKeys(section(t, doc, "### Deployment states"))
		if !slices.Equal(got, protocol.DeploymentStates) {
			t.Errorf("%s: deployment states in the order %q; protocol.DeploymentStates is %q", designPath, got, protocol.DeploymentStates)
		}
	})

	t.Run("scopes", func(t *testing.T) {
		sec := section(t, doc, "## Runs")
		for name, v := range consts(t, "../protocol", "Scope") {
			if !strings.Contains(sec, "`"+v+"`") {
				t.Errorf("%s: protocol.%s (`%s`) is not in the runs section", designPath, name, v)
			}
		}
	})

	t.Run("supervisor defaults", func(t *testing.T) {
		want := map[string]string{
			"ready_timeout":      duration(supervisor.DefaultReadyTimeout),
			"crash_budget":       strconv.Itoa(supervisor.DefaultCrashBudget),
			"watch":              duration(supervisor.DefaultWatch),
			"stop_grace":         duration(supervisor.DefaultStopGrace),
			"--backoff-min":      duration(supervisor.DefaultBackoffMin),
			"--backoff-max":      duration(supervisor.DefaultBackoffMax),
			"--stable-after":     duration(supervisor.DefaultStableAfter),
			"--bad-config-delay": duration(supervisor.DefaultBadConfigDelay),
			"--clean-exit-delay": duration(supervisor.DefaultCleanExitDelay),
		}
		got := map[string]string{}
		for _, r := range tableRows(section(t, doc, "### Defaults of the trial and restarts")) {
			if k := ticked(r[0]); k != "" && len(r) > 1 {
				got[k] = r[1]
			}
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: default of %s is %q; the supervisor's is %s", designPath, k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: default of %s is listed but the test does not know the supervisor's (add it to docs/design_test.go)", designPath, k)
			}
		}
	})

	t.Run("protocol version", func(t *testing.T) {
		sec := section(t, doc, "## Protocol")
		for _, s := range []string{
			fmt.Sprintf("`protocol.Version` = %d", protocol.Version),
			fmt.Sprintf("`protocol.MinVersion` = %d", protocol.MinVersion),
		} {
			if !strings.Contains(sec, s) {
				t.Errorf("%s: the protocol section does not say %s", designPath, s)
			}
		}
	})
}

// homePaths returns every path of a home the code names, relative to the
// home with "<>" for each argument, by what names it: every exported
// method of home.Home that maps string arguments to a path inside the
// home (so a new one must be documented), and the paths other packages
// export.
func homePaths(t *testing.T) map[string]string {
	t.Helper()
	h := home.Home{Dir: filepath.FromSlash("/molt-home")}
	rel := func(p string) (string, bool) {
		r, err := filepath.Rel(h.Dir, p)
		if err != nil || r == "." || strings.HasPrefix(r, "..") {
			return "", false
		}
		r = filepath.ToSlash(r)
		if sfx := platform.ExeSuffix(); sfx != "" {
			r = strings.TrimSuffix(r, sfx)
		}
		return r, true
	}
	out := map[string]string{}
	v := reflect.ValueOf(h)
	for i := range v.NumMethod() {
		m, mt := v.Method(i), v.Type().Method(i)
		ft := m.Type()
		if ft.NumOut() != 1 || ft.Out(0).Kind() != reflect.String {
			continue
		}
		args := make([]reflect.Value, ft.NumIn())
		ok := true
		for j := range args {
			if ft.In(j).Kind() != reflect.String {
				ok = false
				break
			}
			args[j] = reflect.ValueOf("<>")
		}
		if !ok {
			continue
		}
		if r, ok := rel(m.Call(args)[0].String()); ok {
			out["home.Home."+mt.Name] = r
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d path methods of home.Home: %v", len(out), out)
	}
	for what, p := range map[string]string{
		"home.WorkloadLogName": filepath.Join(h.LogsDir(), home.WorkloadLogName("<>", "<>")),
		"agent.DaemonPath":     agent.DaemonPath(h),
		"agent.RequestsDir":    agent.RequestsDir(h),
	} {
		r, ok := rel(p)
		if !ok {
			t.Fatalf("%s: %s is not inside the home", what, p)
		}
		out[what] = r
	}
	return out
}

var placeholderRe = regexp.MustCompile(`<[^>/]+>`)

// placeholder turns versions/<v>/workloads/<name> into versions/<>/workloads/<>.
func placeholder(p string) string { return placeholderRe.ReplaceAllString(p, "<>") }

// section returns the text under heading up to the next heading of the
// same or a higher level.
func section(t *testing.T, doc, heading string) string {
	t.Helper()
	level := strings.Index(heading, " ")
	var b strings.Builder
	in, fence := false, false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			fence = !fence
		}
		if !fence && strings.HasPrefix(line, "#") {
			l := strings.Index(line, " ")
			if in && l > 0 && l <= level {
				break
			}
			if line == heading {
				in = true
				continue
			}
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	if !in {
		t.Fatalf("%s has no section %q", designPath, heading)
	}
	return b.String()
}

// codeBlock returns the lines of the first fenced block of sec.
func codeBlock(t *testing.T, sec string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(sec, "```\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatalf("%s: no code block in %q", designPath, sec[:min(len(sec), 60)])
	}
	return strings.Split(block, "\n")
}

// tableRows returns the cells of every table row of sec but the header
// separators.
func tableRows(sec string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(sec, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.ReplaceAll(line, `\|`, "\x00"), "|"), "|")
		for i, c := range cells {
			cells[i] = strings.TrimSpace(strings.ReplaceAll(c, "\x00", "|"))
		}
		rows = append(rows, cells)
	}
	return rows
}

// tableKeys returns the first cells of sec's table rows that are code.
func tableKeys(sec string) []string {
	var keys []string
	for _, r := range tableRows(sec) {
		if k := ticked(r[0]); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// ticked returns what is inside `...`, or "".
func ticked(cell string) string {
	if len(cell) > 2 && cell[0] == '`' && cell[len(cell)-1] == '`' {
		return cell[1 : len(cell)-1]
	}
	return ""
}

// consts returns the package-level constants of dir whose names start with
// prefix, by name, with their literal values (unquoted strings). Reading
// the source rather than naming the constants here makes a new constant
// fail the test until the design lists it.
func consts(t *testing.T, dir, prefix string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, prefix) || !n.IsExported() {
						continue
					}
					var lit *ast.BasicLit
					if i < len(vs.Values) {
						lit, _ = vs.Values[i].(*ast.BasicLit)
					}
					if lit == nil {
						t.Fatalf("%s: constant %s has no literal value; teach docs/design_test.go to read it", dir, n.Name)
					}
					v := lit.Value
					if lit.Kind == token.STRING {
						if v, err = strconv.Unquote(v); err != nil {
							t.Fatal(err)
						}
					}
					out[n.Name] = v
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no constants %s*", dir, prefix)
	}
	return out
}

// duration writes d as design.md does: whole minutes as 5m, else seconds
// (60s rather than 1m, as agent.yaml and the flags are usually written).
func duration(d time.Duration) string {
	if d%time.Minute == 0 && d > time.Minute {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
