package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/moltfleet/molt/internal/cli"
	"github.com/moltfleet/molt/protocol"
)

// newTable returns a tabwriter for aligned listings; the caller flushes.
// zone is where times are shown and read: the machine's own (tests pin
// it to UTC without touching time.Local, which other goroutines read).
var zone = time.Local

func local(t time.Time) time.Time { return t.In(zone) }

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// row writes one tab-separated line. Every cell is cleaned, so no table
// or detail printer can pass on what a terminal would act on, nor break
// its columns with a TAB or its rows with a newline.
func row(w io.Writer, cols ...any) {
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(w, "\t")
		}
		fmt.Fprint(w, clean(fmt.Sprint(c)))
	}
	fmt.Fprintln(w)
}

// fmtTime shows t in local time, with how long ago it was when recent.
func fmtTime(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	s := local(t).Format("2006-01-02 15:04:05")
	if d := now.Sub(t); d >= 0 && d < 7*24*time.Hour {
		s += " (" + fmtAgo(d) + ")"
	}
	return s
}

// fmtAgo is a short relative duration: "12s ago", "5m ago", "3h ago", "2d ago".
func fmtAgo(d time.Duration) string {
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// dash shows an empty string as "-" so columns stay aligned.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean makes a string that came from the server (and before it from an
// agent) safe to print as one cell or one value: control characters (ESC
// starts terminal sequences, CR overwrites a line, TAB breaks columns,
// newline breaks rows) and the bidi overrides that reorder text are shown
// escaped (\x1b, \u202e) instead of acting on the operator's terminal.
func clean(s string) string { return escape(s, nil) }

// parseSince accepts an RFC 3339 time or a duration back from now ("15m").
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04:05", s, zone); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, zone); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a time (2026-01-02T15:04:05Z, \"2026-01-02 15:04:05\", 2026-01-02) nor a duration back from now (15m, 2h)", s)
}

// isTerminal reports whether f is an interactive terminal.
func isTerminal(f any) bool {
	if w, ok := f.(io.Writer); ok {
		f = rawWriter(w)
	}
	if file, ok := f.(*os.File); ok {
		return term.IsTerminal(int(file.Fd()))
	}
	return false
}

// errNotConfirmed is returned when the operator answers no.
var errNotConfirmed = errors.New("not confirmed; nothing was changed")

// confirm asks question on out and reads y/yes from in. Without a
// terminal it refuses, so a script never hangs on a prompt nor starts an
// upgrade nobody saw.
func confirm(in io.Reader, out io.Writer, interactive bool, question string) error {
	if !interactive {
		return cli.Usage("refusing to start without confirmation: stdin is not a terminal; pass --yes to confirm")
	}
	fmt.Fprintf(out, "%s [y/N] ", question)
	line, err := bufio.NewReader(io.LimitReader(in, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return cli.Exit(1, errNotConfirmed)
}

// bar draws done out of total as a bar of width cells.
func bar(done, total, width int) string {
	if total <= 0 || width <= 0 {
		return "[" + strings.Repeat(" ", max(width, 0)) + "]"
	}
	n := done * width / total
	n = min(max(n, 0), width)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

// fmtCounts renders per-state counts in the order of a deployment's life
// (protocol.DeploymentStates), then any state the server added later,
// alphabetically; zero counts are left out.
func fmtCounts(counts map[string]int) string {
	seen := map[string]bool{}
	var parts []string
	for _, s := range protocol.DeploymentStates {
		seen[s] = true
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, counts[s]))
		}
	}
	var extra []string
	for s, n := range counts {
		if !seen[s] && n > 0 {
			extra = append(extra, fmt.Sprintf("%s %d", s, n))
		}
	}
	sort.Strings(extra)
	return strings.Join(append(parts, extra...), ", ")
}
