// Package probe runs one check of a workload spec (spec.Probe) once: an
// HTTP GET, a TCP connection, a command, "still running after" or "the
// ready file exists". The supervisor uses it for ready and live checks,
// the agent for busy probes. Every attempt is bounded by the probe's
// timeout, reads at most a few KiB of what the workload answers, and
// fails with one line a user can act on.
package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/moltfleet/molt/platform"
	"github.com/moltfleet/molt/workload/spec"
)

// Target is the workload a probe looks at.
type Target struct {
	// Dir is the workload's directory versions/<v>/workloads/<name>: a
	// command probe's relative argv[0] resolves there and runs there.
	Dir string
	// Env is the command probe's environment (the workload's).
	Env []string
	// Started is when the workload's process started ("running").
	Started time.Time
	// Alive reports whether the workload's process still runs
	// ("running"); nil counts as running.
	Alive func() bool
	// ReadyFile is $MOLT_READY_FILE ("file").
	ReadyFile string
	// Now is the clock of "running" (default time.Now).
	Now func() time.Time
}

// Bounds on what a probe reads from the workload.
const (
	// maxBody bounds the part of an HTTP answer that is read.
	maxBody = 4 << 10
	// maxOutput bounds a command's stdout and stderr kept.
	maxOutput = 4 << 10
	// maxRedirects bounds the redirects an HTTP probe follows.
	maxRedirects = 3
	// maxDetail bounds what of the workload's own words goes into an
	// error line.
	maxDetail = 200
	// waitDelay bounds the wait for a command's output after it exited
	// or was killed (a child it left may hold the pipe).
	waitDelay = time.Second
)

// ErrNoAnswer means a busy probe answered neither "busy" nor "idle".
var ErrNoAnswer = errors.New("answered neither busy nor idle")

// client is shared by every HTTP probe: no proxy from the environment (a
// probe talks to the workload on this host), no keep-alive (a probe every
// few seconds must not hold connections open), few redirects.
var client = &http.Client{
	Transport: &http.Transport{
		Proxy:                  nil,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
	},
	CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return fmt.Errorf("more than %d redirects", maxRedirects)
		}
		return nil
	},
}

// Check runs p once, bounded by p.Timeout (default
// spec.DefaultProbeTimeout), and returns nil when it passes, else an
// error whose text is one line naming the check and what went wrong.
func Check(ctx context.Context, p spec.Probe, t Target) error {
	ctx, cancel := context.WithTimeout(ctx, timeout(p))
	defer cancel()
	switch p.Kind() {
	case spec.KindHTTP:
		_, err := get(ctx, p, 0)
		return err
	case spec.KindTCP:
		return dial(ctx, p)
	case spec.KindCommand:
		_, err := command(ctx, p, t)
		return err
	case spec.KindRunning:
		return running(p, t)
	case spec.KindFile:
		if _, err := os.Stat(t.ReadyFile); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return errors.New("no ready file yet")
			}
			return fmt.Errorf("ready file: %w", err)
		}
		return nil
	}
	return fmt.Errorf("no check (kind %q)", p.Kind())
}

// Busy asks a busy probe: (true, nil) when it answers busy, (false, nil)
// when idle, an error when it fails or answers neither (ErrNoAnswer);
// the caller counts an error as idle, so a broken probe cannot block
// upgrades, and logs it.
func Busy(ctx context.Context, b spec.Busy, t Target) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout(b.Probe))
	defer cancel()
	var out []byte
	var err error
	what := ""
	switch b.Kind() {
	case spec.KindHTTP:
		what = "GET " + b.HTTP
		out, err = get(ctx, b.Probe, maxBody)
	case spec.KindCommand:
		what = "command " + b.Command[0]
		out, err = command(ctx, b.Probe, t)
	default:
		return false, fmt.Errorf("busy: check kind %q is not allowed", b.Kind())
	}
	if err != nil {
		return false, err
	}
	return answer(what, out)
}

// answer reads a busy probe's answer: it starts with the word "busy" or
// "idle", in any case ("busy: 2 scans running" is busy).
func answer(what string, out []byte) (bool, error) {
	s := strings.ToLower(strings.TrimLeftFunc(string(out), unicode.IsSpace))
	word := func(w string) bool {
		if !strings.HasPrefix(s, w) {
			return false
		}
		rest := s[len(w):]
		return rest == "" || !unicode.IsLetter(rune(rest[0])) && !unicode.IsDigit(rune(rest[0]))
	}
	switch {
	case word("busy"):
		return true, nil
	case word("idle"):
		return false, nil
	}
	return false, fmt.Errorf("%s: %w (%s)", what, ErrNoAnswer, detail(out, "nothing"))
}

func timeout(p spec.Probe) time.Duration {
	if p.Timeout > 0 {
		return p.Timeout.D()
	}
	return spec.DefaultProbeTimeout
}

// get GETs p.HTTP and passes on a 2xx, returning up to keep bytes of the
// body.
func get(ctx context.Context, p spec.Probe, keep int64) ([]byte, error) {
	what := "GET " + p.HTTP
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.HTTP, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	req.Header.Set("User-Agent", "molt-probe")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", what, reason(ctx, p, err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, max(keep, 256)))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%s: %s", what, resp.Status)
	}
	if err != nil && keep > 0 {
		return nil, fmt.Errorf("%s: reading the answer: %s", what, reason(ctx, p, err))
	}
	if int64(len(body)) > keep {
		body = body[:keep]
	}
	return body, nil
}

func dial(ctx context.Context, p spec.Probe) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.TCP)
	if err != nil {
		return fmt.Errorf("tcp %s: %s", p.TCP, reason(ctx, p, err))
	}
	return c.Close()
}

// command runs p.Command in t.Dir with t.Env in its own process group,
// killed with the group when ctx ends, and passes when it exits 0. It
// returns up to maxOutput bytes of stdout.
func command(ctx context.Context, p spec.Probe, t Target) ([]byte, error) {
	argv0 := p.Command[0]
	what := "command " + argv0
	name := argv0
	if !filepath.IsAbs(name) {
		name = filepath.Join(t.Dir, filepath.FromSlash(name))
	}
	cmd := exec.CommandContext(ctx, name, p.Command[1:]...)
	cmd.Dir = t.Dir
	cmd.Env = t.Env
	var stdout, stderr bounded
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	platform.PrepareChild(cmd)
	cmd.Cancel = func() error { return platform.KillProcess(cmd.Process.Pid) }
	cmd.WaitDelay = waitDelay
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: %s", what, reason(ctx, p, ctx.Err()))
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if line := detail(stderr.Bytes(), ""); line != "" {
				return nil, fmt.Errorf("%s: %v: %s", what, err, line)
			}
			return nil, fmt.Errorf("%s: %v", what, err)
		}
		if errors.Is(err, exec.ErrWaitDelay) {
			// It exited 0 but something it started keeps its output open:
			// the answer is in.
			return stdout.Bytes(), nil
		}
		return nil, fmt.Errorf("%s: %s", what, reason(ctx, p, err))
	}
	return stdout.Bytes(), nil
}

func running(p spec.Probe, t Target) error {
	if t.Alive != nil && !t.Alive() {
		return errors.New("not running")
	}
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	if t.Started.IsZero() || now().Sub(t.Started) < p.Running.D() {
		return fmt.Errorf("still starting: running %s not reached", p.Running.D())
	}
	return nil
}

// reason turns a network or exec error into its last, useful words:
// "connection refused", "timed out after 5s", "no such host".
func reason(ctx context.Context, p spec.Probe, err error) string {
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded {
		return fmt.Sprintf("timed out after %s", timeout(p))
	}
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Sprintf("timed out after %s", timeout(p))
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.Error()
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// Drop its 'Get "url": ' prefix: the caller names the URL.
		return oneLine(ue.Err.Error())
	}
	return oneLine(err.Error())
}

// detail is the first line of a workload's own words, bounded, for an
// error line; empty gives none.
func detail(b []byte, none string) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return none
	}
	return oneLine(s)
}

func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxDetail {
		s = strings.ToValidUTF8(s[:maxDetail], "") + "…"
	}
	return s
}

// bounded keeps the first maxOutput bytes written and discards the rest,
// so a chatty probe cannot fill memory, and never fails the writer.
type bounded struct{ buf bytes.Buffer }

func (b *bounded) Write(p []byte) (int, error) {
	if room := maxOutput - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *bounded) Bytes() []byte { return b.buf.Bytes() }
