package platform

import (
	"bytes"
	"fmt"
	"strings"
)

// MachineID returns a stable identifier of this machine (or of this OS
// installation): /etc/machine-id on Linux, MachineGuid on Windows,
// IOPlatformUUID on macOS, kern.hostuuid on FreeBSD, hw.uuid on OpenBSD,
// hostid on Solaris and AIX. Callers must not expose it as is; the agent
// hashes it into a fingerprint. A cloned disk image keeps the ID only when
// the image's owner did not regenerate it, which is why a change of it (not
// its sameness) is the signal callers act on. ErrNotSupported when the OS
// has none.
func MachineID() (string, error) {
	id, err := machineID()
	if err != nil {
		return "", err
	}
	id = cleanMachineID(id)
	if id == "" {
		return "", fmt.Errorf("machine id: empty: %w", ErrNotSupported)
	}
	return id, nil
}

// cleanMachineID trims whitespace and NULs and bounds the length, since the
// sources are files and command outputs this process does not control.
func cleanMachineID(s string) string {
	s = strings.TrimSpace(strings.Trim(s, "\x00"))
	if len(s) > 256 {
		s = s[:256]
	}
	return s
}

// parseIOPlatformUUID extracts the value from `ioreg -rd1 -c
// IOPlatformExpertDevice` output:   "IOPlatformUUID" = "564D...".
func parseIOPlatformUUID(out []byte) string {
	for _, line := range bytes.Split(out, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte("="))
		if !ok || !bytes.Contains(k, []byte(`"IOPlatformUUID"`)) {
			continue
		}
		return strings.Trim(strings.TrimSpace(string(v)), `"`)
	}
	return ""
}
