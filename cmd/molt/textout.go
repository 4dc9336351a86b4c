package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/moltfleet/molt/protocol"
)

// What molt prints as text comes largely from the server, and before it
// from agents: names, hostnames, reasons, step details, event messages.
// A character a terminal acts on (ESC starts a sequence that can retitle
// the window, move the cursor or hide a line; CR overwrites one; C1 CSI
// acts as ESC [) must reach the operator as something to read, never as
// an action, even when the server let it through. Two layers do that:
//
//   - row escapes every cell of every table (and so every detail printer
//     built on it), TAB and newline included, so a cell stays one cell;
//   - escapeTextOutput puts an escapeWriter in front of stdout and stderr
//     of every command that talks to the server, so free text (events,
//     messages, errors of the live display) is escaped as well; only
//     --json output is left exact, for scripts.

// escape returns s with every character protocol.Unsafe names shown as
// \xNN or \uNNNN, except those keep accepts. Invalid UTF-8 becomes U+FFFD:
// a stray byte 0x9b must not be read as CSI by a terminal in Latin-1.
func escape(s string, keep func(rune) bool) string {
	if !needsEscape(s, keep) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !protocol.Unsafe(r) || (keep != nil && keep(r)):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

func needsEscape(s string, keep func(rune) bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			// Rare in molt's output: look at the runes.
			return !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool {
				return protocol.Unsafe(r) && (keep == nil || !keep(r))
			})
		}
		if (c < 0x20 || c == 0x7f) && (keep == nil || !keep(rune(c))) {
			return true
		}
	}
	return false
}

// layout is what molt's own text output is made of beyond printable
// characters: line ends and the tabs of tab-separated lines.
func layout(r rune) bool { return r == '\n' || r == '\t' }

// escapeWriter escapes what passes through it (see escape), keeping the
// line ends. A rune split over two writes is held back until it is whole,
// so a C1 control cut in two is still seen.
type escapeWriter struct {
	w       io.Writer
	pending []byte
}

// newEscapeWriter wraps w, once.
func newEscapeWriter(w io.Writer) io.Writer {
	if _, ok := w.(*escapeWriter); ok {
		return w
	}
	return &escapeWriter{w: w}
}

func (e *escapeWriter) Write(p []byte) (int, error) {
	buf := append(e.pending, p...)
	cut := len(buf)
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-utf8.UTFMax; i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	e.pending = append([]byte(nil), buf[cut:]...)
	if _, err := io.WriteString(e.w, escape(string(buf[:cut]), layout)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// rawWriter is the writer under an escapeWriter: for the few control
// sequences molt itself sends (the live display's redraw), and to ask
// whether it is a terminal.
func rawWriter(w io.Writer) io.Writer {
	if e, ok := w.(*escapeWriter); ok {
		return e.w
	}
	return w
}

// escapeTextOutput makes every command under cmd write its stdout through
// an escapeWriter unless it prints --json (JSON escapes C0 controls
// itself, and scripts must get the server's strings exactly), and its
// stderr (the plan, progress and prompts of molt upgrade) always.
func escapeTextOutput(cmd *cobra.Command) {
	cmd.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		if f := c.Flags().Lookup("json"); f == nil || f.Value.String() != "true" {
			c.SetOut(newEscapeWriter(c.OutOrStdout()))
		}
		c.SetErr(newEscapeWriter(c.ErrOrStderr()))
		return nil
	}
}
