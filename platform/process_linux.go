package platform

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

const startSlack = 0

// IdentifyProcess reads pid's start time and executable from /proc.
func IdentifyProcess(pid int) (ProcessIdentity, error) {
	id := ProcessIdentity{PID: pid}
	if pid <= 0 {
		return id, ErrNoProcess
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if os.IsNotExist(err) {
		return id, ErrNoProcess
	}
	if err != nil {
		return id, err
	}
	state, start, err := parseProcStat(b)
	if err != nil {
		return id, fmt.Errorf("pid %d: %w", pid, err)
	}
	if state == "Z" || state == "X" {
		return id, ErrNoProcess
	}
	id.Start = start
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if os.IsNotExist(err) {
		return id, ErrNoProcess
	}
	if err != nil {
		return id, err
	}
	id.Exe = exe
	return id, nil
}

// parseProcStat returns the state and the start time (field 22) of a
// /proc/PID/stat line. The command name (field 2) may hold spaces and
// parentheses, so the fields are counted from its last ')'.
func parseProcStat(b []byte) (state string, start int64, err error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, fmt.Errorf("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return "", 0, fmt.Errorf("malformed /proc stat: %d fields", len(f))
	}
	start, err = strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("malformed /proc stat start time: %w", err)
	}
	return f[0], start, nil
}
