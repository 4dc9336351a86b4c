package platform

import (
	"errors"
	"io/fs"
	"os"
)

// machineIDFiles are read in order: systemd's, then D-Bus's for systems
// without systemd (SysV, OpenRC).
var machineIDFiles = []string{"/etc/machine-id", "/var/lib/dbus/machine-id"}

func machineID() (string, error) {
	for _, p := range machineIDFiles {
		b, err := readBounded(p, 4096)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		if id := cleanMachineID(string(b)); id != "" {
			return id, nil
		}
	}
	return "", ErrNotSupported
}

func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, max)
	n, err := f.Read(b)
	if n > 0 {
		return b[:n], nil
	}
	return nil, err
}
