package protocol

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite docs/events.md from EventCatalogue")

func eventsDoc() string {
	var b strings.Builder
	b.WriteString(`# Event catalogue

Every step the control server takes or observes is an event with a stable
numeric id and a name (` + "`molt events`, `GET /v1/events`" + `). Ids are never reused
or renumbered; 264, 277, 706 and 707 keep the numbers operators know from
other agent platforms. An event carries its time, a one-line message, and
where they apply the agent, run and deployment ids plus the fields named
below.

This file is generated from ` + "`protocol.EventCatalogue`" + ` by
` + "`go test ./protocol -run TestEventsDoc -update`" + `; a test fails when it is stale.

| id | name | meaning |
|---:|---|---|
`)
	for _, e := range EventCatalogue {
		fmt.Fprintf(&b, "| %d | `%s` | %s |\n", e.ID, e.Name, strings.ReplaceAll(e.Description, "|", `\|`))
	}
	return b.String()
}

func TestEventsDoc(t *testing.T) {
	const path = "../docs/events.md"
	want := eventsDoc()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run go test ./protocol -run TestEventsDoc -update", err)
	}
	if string(got) != want {
		t.Fatalf("%s is stale: run go test ./protocol -run TestEventsDoc -update", path)
	}
}
