package window

import (
	"go/parser"
	"go/token"
	"strconv"
	"testing"
)

// Windows must resolve zone names on hosts with neither a zone database
// nor a Go installation (air-gapped Windows servers), so the package
// embeds one. Tests cannot hide the host's copies; this keeps the import.
func TestEmbedsZoneDatabase(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "window.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == "time/tzdata" {
			return
		}
	}
	t.Error(`window.go does not import _ "time/tzdata": zone names would fail on hosts without a zone database`)
}
