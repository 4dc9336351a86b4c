package server

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Every SQL statement of the server lives in package store: no file of
// this package (tests aside) holds SQL text or reaches the database's raw
// access (store.DB.Reader, Writer; Tx.Exec and the like).
func TestNoSQLInServer(t *testing.T) {
	sqlText := regexp.MustCompile(`^\s*(SELECT\s|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX)|ALTER\s+TABLE|DROP\s+TABLE|WITH\s+\w+\s+AS|SAVEPOINT|RELEASE\s+SAVEPOINT|ROLLBACK\s+TO)`)
	raw := map[string]bool{"Reader": true, "Writer": true, "Exec": true, "QueryRow": true, "QueryContext": true, "QueryRowContext": true, "PrepareContext": true}
	files, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, f := range files {
		name := f.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if n.Kind == token.STRING {
					if s, err := strconv.Unquote(n.Value); err == nil && sqlText.MatchString(s) {
						t.Errorf("%s: SQL in package server: %.60q (it belongs in package store)", fset.Position(n.Pos()), s)
					}
				}
			case *ast.SelectorExpr:
				if raw[n.Sel.Name] {
					if x, ok := n.X.(*ast.SelectorExpr); ok && x.Sel.Name == "st" || isTx(n.X) {
						t.Errorf("%s: raw database access .%s (add a method to package store)", fset.Position(n.Pos()), n.Sel.Name)
					}
				}
			}
			return true
		})
	}
	if checked < 20 {
		t.Fatalf("checked %d files: run from the package's directory", checked)
	}
}

// isTx says whether x names a writer's transaction (w.tx, wr.tx).
func isTx(x ast.Expr) bool {
	s, ok := x.(*ast.SelectorExpr)
	return ok && s.Sel.Name == "tx"
}
