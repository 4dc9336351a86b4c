package cli_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/internal/cli/clitest"
)

// newTestTree is a small tree with each kind of command the three programs
// have: a group, a leaf with an argument count, a leaf with a required flag,
// a leaf whose argument check already returns its own usage error.
func newTestTree() *cobra.Command {
	root := &cobra.Command{Use: "prog"}
	root.AddCommand(cli.NewVersionCommand("prog"))
	group := &cobra.Command{Use: "things", Short: "Things"}
	show := &cobra.Command{Use: "show ID", Args: cobra.ExactArgs(1), RunE: func(*cobra.Command, []string) error { return nil }}
	show.Flags().Int("timeout", 60, "seconds")
	show.Flags().Duration("wait", 0, "how long")
	mk := &cobra.Command{Use: "make", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error { return nil }}
	mk.Flags().String("name", "", "name")
	_ = mk.MarkFlagRequired("name")
	own := &cobra.Command{Use: "own FILE", Args: func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return cli.Usage("own needs one file")
		}
		return nil
	}, RunE: func(*cobra.Command, []string) error { return nil }}
	group.AddCommand(show, mk, own)
	root.AddCommand(group)
	return root
}

func TestUsageErrorsWalk(t *testing.T) { clitest.CheckUsageErrors(t, newTestTree) }

func TestUsageErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"things", "sohw", "1"}, 2, `prog: unknown command "sohw" for "prog things"; did you mean "show"? (see prog things --help)` + "\n"},
		{[]string{"things", "show"}, 2, "prog: things show: accepts 1 arg(s), received 0 (usage: prog things show ID [flags])\n"},
		{[]string{"things", "show", "1", "--timeout", "banana"}, 2, `prog: things show: invalid argument "banana" for "--timeout" flag`},
		{[]string{"things", "make"}, 2, `prog: things make: required flag(s) "name" not set (see prog things make --help)` + "\n"},
		{[]string{"things", "make", "--name", "n", "extra"}, 2, `prog: things make: takes no arguments, got ["extra"]`},
		{[]string{"things", "own"}, 2, "prog: own needs one file\n"},
		{[]string{"things", "make", "--name", "n"}, 0, ""},
		{[]string{"things"}, 0, ""},
		{[]string{"help", "things", "show"}, 0, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			root := newTestTree()
			var out, stderr bytes.Buffer
			root.SetOut(&out)
			code := cli.Main(root, tc.args, &stderr)
			if code != tc.code || !strings.HasPrefix(stderr.String(), tc.want) || (tc.want == "" && stderr.Len() > 0) {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
}

// Main may run twice on one tree (a test that reuses its root): the
// validators are wrapped once.
func TestUsageErrorsTwice(t *testing.T) {
	root := newTestTree()
	var stderr bytes.Buffer
	cli.Main(root, []string{"things", "show", "1"}, &stderr)
	stderr.Reset()
	if code := cli.Main(root, []string{"things", "show"}, &stderr); code != 2 || strings.Count(stderr.String(), "usage:") != 1 {
		t.Errorf("second run: exit %d, stderr %q", code, stderr.String())
	}
}
