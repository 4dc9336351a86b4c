//go:build !linux && !windows

package platform

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ps reports the elapsed time to the second; the start time derived from
// it can be off by one either way.
const startSlack = 2

// IdentifyProcess asks ps for pid's elapsed time and command, fields
// POSIX defines (-o etime, -o comm), so the BSDs, macOS, Solaris and AIX
// all answer them. A zombie is reported as alive until it is reaped;
// the supervisor's own children are reaped by it, orphans by init.
func IdentifyProcess(pid int) (ProcessIdentity, error) {
	id := ProcessIdentity{PID: pid}
	if pid <= 0 {
		return id, ErrNoProcess
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now()
	out, err := exec.CommandContext(ctx, "ps", "-o", "etime=", "-o", "comm=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		// ps exits non-zero, printing nothing, for a pid that is gone.
		if _, ok := err.(*exec.ExitError); ok && len(bytes.TrimSpace(out)) == 0 {
			return id, ErrNoProcess
		}
		return id, fmt.Errorf("ps -p %d: %w", pid, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return id, ErrNoProcess
	}
	el, err := parseEtime(f[0])
	if err != nil {
		return id, fmt.Errorf("ps -p %d: %w", pid, err)
	}
	id.Start = now.Add(-el).Unix()
	id.Exe = strings.Join(f[1:], " ")
	return id, nil
}

// parseEtime parses ps's elapsed time, [[dd-]hh:]mm:ss.
func parseEtime(s string) (time.Duration, error) {
	var days int64
	if d, rest, ok := strings.Cut(s, "-"); ok {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad etime %q", s)
		}
		days, s = n, rest
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, fmt.Errorf("bad etime %q", s)
	}
	var secs int64
	for _, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad etime %q", s)
		}
		secs = secs*60 + n
	}
	return time.Duration(days*86400+secs) * time.Second, nil
}
