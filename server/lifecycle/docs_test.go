package lifecycle

import (
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moltfleet/molt/protocol"
)

var printDocs = flag.Bool("print-docs", false, "print the transition tables as docs/design.md shows them")

const designDoc = "../../docs/design.md"

// markdown renders table as the docs show it.
func markdown(table []Transition) string {
	var b strings.Builder
	b.WriteString("| event | from | to | final |\n|---|---|---|---|\n")
	for _, t := range table {
		from := make([]string, len(t.From))
		for i, f := range t.From {
			from[i] = "`" + f + "`"
		}
		final := ""
		if t.Terminal {
			final = "yes"
		}
		b.WriteString("| `" + string(t.Event) + "` | " + strings.Join(from, ", ") + " | `" + t.To + "` | " + final + " |\n")
	}
	return b.String()
}

// TestDocs keeps docs/design.md equal to the tables: its state and
// status lists, and its transition tables (go test -run TestDocs
// -print-docs prints them).
func TestDocs(t *testing.T) {
	b, err := os.ReadFile(designDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, c := range []struct {
		name  string
		table []Transition
	}{{"deployment", Deployment}, {"run", Run}} {
		want := markdown(c.table)
		if *printDocs {
			t.Logf("%s transitions:\n%s", c.name, want)
		}
		if !strings.Contains(doc, want) {
			t.Errorf("%s: the %s transitions differ from lifecycle.%s; run go test -run TestDocs -print-docs -v and paste them", designDoc, c.name, map[string]string{"deployment": "Deployment", "run": "Run"}[c.name])
		}
	}
	for _, c := range []struct {
		heading, column string
		want            []string
	}{
		{"### Deployment states", "state", protocol.DeploymentStates},
		{"### Run statuses", "status", RunStatuses},
	} {
		if got := firstColumn(t, doc, c.heading); !slices.Equal(got, c.want) {
			t.Errorf("%s: %s lists %v, want %v", designDoc, c.heading, got, c.want)
		}
	}
}

var rowRe = regexp.MustCompile("^\\| `([a-z_]+)` \\|")

// firstColumn is the first column of the table under heading.
func firstColumn(t *testing.T, doc, heading string) []string {
	t.Helper()
	i := strings.Index(doc, heading+"\n")
	if i < 0 {
		t.Fatalf("%s: no heading %q", designDoc, heading)
	}
	var out []string
	inTable := false
	for _, line := range strings.Split(doc[i+len(heading)+1:], "\n") {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		if m := rowRe.FindStringSubmatch(line); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}
