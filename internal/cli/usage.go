package cli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// usageDone marks a tree whose refusals are already usage errors, so that
// running Main twice on one root does not wrap the validators twice.
const usageDone = "cli.usage-errors"

// usageErrors makes every refusal cobra itself produces a usage error (exit
// 2), for each command of root's tree, so the exit-code contract of
// docs/cli.md holds without code in each command: an unknown command or
// help topic, an unknown flag, a flag without its value or with a bad one,
// a wrong number of arguments, a missing required flag. Cobra reports these
// as plain errors (exit 1) and, for an unknown subcommand of a group such as
// "molt agents frobnicate", prints the group's help and succeeds.
func usageErrors(root *cobra.Command) {
	if root.Annotations[usageDone] != "" {
		return
	}
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations[usageDone] = "1"
	// Cobra adds these when it executes; added now, they get the same
	// treatment as the program's own commands.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	// Groups become runnable below (to refuse arguments); their usage
	// stays "prog group [command]", without a "prog group [flags]" line
	// that suggests the group does something by itself.
	if t := root.UsageTemplate(); strings.Contains(t, groupUsage) {
		root.SetUsageTemplate(strings.Replace(t, groupUsage, `Usage:{{if and .Runnable (not (index .Annotations "`+groupMark+`"))}}`, 1))
	}
	walk(root, func(c *cobra.Command) {
		flagErr := c.FlagErrorFunc()
		c.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
			return asUsage(c, flagErr(c, err))
		})
		switch {
		case c.Name() == "help" && c.HasParent() && c.Run != nil && c.RunE == nil:
			wrapHelp(c)
		case c.HasSubCommands() && !c.Runnable():
			// A group: cobra would answer any argument with the group's
			// help and exit 0. Only no argument is that.
			c.Args = groupArgs
			c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
			if c.Annotations == nil {
				c.Annotations = map[string]string{}
			}
			c.Annotations[groupMark] = "1"
		default:
			wrapArgs(c)
		}
	})
}

// groupUsage is how cobra's usage template starts.
const groupUsage = "Usage:{{if .Runnable}}"

// groupMark annotates a group made runnable only to refuse arguments.
const groupMark = "cli.group"

func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		walk(sub, f)
	}
}

// groupArgs refuses any argument of a command that only groups others: it
// is a subcommand nobody defined.
func groupArgs(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return unknownCommand(c, args[0])
}

func unknownCommand(c *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, c.CommandPath())
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's own default
	}
	if s := c.SuggestionsFor(name); len(s) > 0 && !c.DisableSuggestions {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return Usage("%s (see %s --help)", msg, c.CommandPath())
}

// wrapArgs makes c's argument check, and cobra's check of required flags
// and flag groups (which it does later, after the pre-run hooks), usage
// errors. Flags are parsed before Args is called, so all three can be
// checked here.
func wrapArgs(c *cobra.Command) {
	args := c.Args
	c.Args = func(c *cobra.Command, a []string) error {
		if args != nil {
			if err := args(c, a); err != nil {
				var ee *ExitError
				if errors.As(err, &ee) {
					return err
				}
				if !c.HasSubCommands() && strings.HasPrefix(err.Error(), "unknown command ") {
					// cobra.NoArgs words it for groups; a leaf has no subcommands.
					return Usage("%s: takes no arguments, got %q (usage: %s)", commandName(c), a, c.UseLine())
				}
				return Usage("%s: %v (usage: %s)", commandName(c), err, c.UseLine())
			}
		}
		if err := c.ValidateRequiredFlags(); err != nil {
			return asUsage(c, err)
		}
		if err := c.ValidateFlagGroups(); err != nil {
			return asUsage(c, err)
		}
		return nil
	}
}

// wrapHelp makes "help NAME" of a command that does not exist a usage
// error; cobra prints "Unknown help topic" and the usage, and exits 0.
func wrapHelp(h *cobra.Command) {
	run := h.Run
	h.Run = nil
	h.RunE = func(c *cobra.Command, args []string) error {
		target, rest, err := c.Root().Find(args)
		if err != nil || len(rest) > 0 {
			if target == nil {
				target = c.Root()
			}
			name := strings.Join(args, " ")
			if len(rest) > 0 {
				name = rest[0]
			}
			return unknownCommand(target, name)
		}
		run(c, args)
		return nil
	}
}

// asUsage turns a refusal into a usage error that says where the usage is
// written. An *ExitError is kept: the command chose its code.
func asUsage(c *cobra.Command, err error) error {
	var ee *ExitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	if !c.HasParent() {
		return Usage("%v (see %s --help)", err, c.CommandPath())
	}
	return Usage("%s: %v (see %s --help)", commandName(c), err, c.CommandPath())
}

// commandName is c's path without the program, which Main prints first.
func commandName(c *cobra.Command) string {
	if !c.HasParent() {
		return c.Name()
	}
	return strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" ")
}
