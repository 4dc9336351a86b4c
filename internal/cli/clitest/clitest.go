// Package clitest checks the exit-code contract of a molt program's cobra
// tree from the program's own tests: every command refuses a bad flag, a
// bad flag value, an unknown subcommand and a wrong number of arguments
// with exit 2 and one line on stderr, and answers help with exit 0.
package clitest

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/moltfleet/molt/internal/cli"
)

// run builds a fresh tree and runs args through cli.Main.
func run(newRoot func() *cobra.Command, args []string) (code int, stdout, stderr string) {
	root := newRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	code = cli.Main(root, args, &errb)
	return code, out.String(), errb.String()
}

// cobraHelp is what cobra itself prints for args, without cli.Main: the
// usage errors must not change the help.
func cobraHelp(newRoot func() *cobra.Command, args []string) string {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(args)
	_ = root.Execute()
	return out.String()
}

// Commands returns the path (without the program) of every command of the
// tree newRoot builds, as cli.Main sees it (with help and completion).
func Commands(newRoot func() *cobra.Command) [][]string {
	root := newRoot()
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	cli.Main(root, []string{"--help"}, io.Discard)
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if strings.HasPrefix(c.Name(), "__") {
			return // cobra's hidden completion machinery
		}
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(root, nil)
	return paths
}

// find returns the command at path in a fresh tree.
func find(newRoot func() *cobra.Command, path []string) *cobra.Command {
	root := newRoot()
	root.SetOut(io.Discard)
	cli.Main(root, []string{"--help"}, io.Discard)
	c, _, err := root.Find(path)
	if err != nil {
		return nil
	}
	return c
}

// badValue is a value no flag of these types accepts.
var badValue = map[string]bool{
	"bool": true, "int": true, "int8": true, "int16": true, "int32": true, "int64": true,
	"uint": true, "uint8": true, "uint16": true, "uint32": true, "uint64": true,
	"float32": true, "float64": true, "duration": true, "ip": true, "ipNet": true,
	"count": true, "intSlice": true, "durationSlice": true, "boolSlice": true,
}

// CheckUsageErrors walks every command of the tree newRoot builds and
// asserts the contract of docs/cli.md: usage errors exit 2 with one line
// "program: ..." on stderr; --help and help exit 0 and print what cobra
// prints.
func CheckUsageErrors(t *testing.T, newRoot func() *cobra.Command) {
	t.Helper()
	program := newRoot().Name()
	usage := func(t *testing.T, args []string, mention string) {
		t.Helper()
		code, _, stderr := run(newRoot, args)
		if code != 2 {
			t.Errorf("%s %q: exit %d, want 2 (stderr %q)", program, args, code, stderr)
		}
		if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, program+": ") || !strings.HasSuffix(stderr, "\n") {
			t.Errorf("%s %q: stderr %q, want one line %q", program, args, stderr, program+": ...")
		}
		if !strings.Contains(stderr, mention) {
			t.Errorf("%s %q: stderr %q does not mention %q", program, args, stderr, mention)
		}
	}
	argChecks := 0
	for _, path := range Commands(newRoot) {
		name := strings.Join(append([]string{program}, path...), " ")
		t.Run(name, func(t *testing.T) {
			with := func(extra ...string) []string { return append(append([]string{}, path...), extra...) }
			usage(t, with("--no-such-flag"), "--no-such-flag")
			for _, args := range [][]string{with("--help"), append([]string{"help"}, path...)} {
				code, stdout, stderr := run(newRoot, args)
				if code != 0 || stdout == "" || stderr != "" {
					t.Errorf("%s %q: exit %d, stdout %d bytes, stderr %q; want 0, the help, nothing", program, args, code, len(stdout), stderr)
				}
				if plain := cobraHelp(newRoot, args); stdout != plain {
					t.Errorf("%s %q: the help differs from cobra's own:\n%s\n--- cobra's:\n%s", program, args, stdout, plain)
				}
			}
			c := find(newRoot, path)
			if c == nil {
				t.Fatalf("%s: not found in a fresh tree", name)
			}
			if c.HasSubCommands() {
				usage(t, with("no-such-command"), `"no-such-command"`)
				return
			}
			// Argument counts the command's own check refuses: those
			// must be usage errors (and never run the command).
			if c.Args != nil && c.Name() != "help" {
				for n := range 4 {
					a := make([]string, n)
					for i := range a {
						a[i] = "x"
					}
					if c.Args(c, a) != nil {
						argChecks++
						usage(t, with(a...), "")
					}
				}
			}
			fs := pflag.NewFlagSet("all", pflag.ContinueOnError)
			fs.AddFlagSet(c.LocalFlags())
			fs.AddFlagSet(c.InheritedFlags())
			fs.VisitAll(func(f *pflag.Flag) {
				if badValue[f.Value.Type()] {
					usage(t, with("--"+f.Name+"=banana"), "--"+f.Name)
				}
			})
		})
	}
	if argChecks == 0 {
		t.Errorf("%s: no command refused any argument count; the walk checked nothing", program)
	}
	for _, args := range [][]string{{"no-such-command"}, {"help", "no-such-command"}} {
		usage(t, args, `"no-such-command"`)
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"version"}} {
		if code, stdout, stderr := run(newRoot, args); code != 0 || stdout == "" || stderr != "" {
			t.Errorf("%s %q: exit %d, stdout %d bytes, stderr %q; want 0, output, nothing", program, args, code, len(stdout), stderr)
		}
	}
}
