package platform

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
)

// machineIDFiles are read in order: systemd's, then D-Bus's for systems
// without systemd (SysV, OpenRC), then the firmware's system UUID (root
// only), which a hypervisor gives every virtual machine and so every
// clone of an image: minimal roots and containers may have no machine-id
// at all, and a host without any id could not enroll.
var machineIDFiles = []string{"/etc/machine-id", "/var/lib/dbus/machine-id", "/sys/class/dmi/id/product_uuid"}

func machineID() (string, error) { return machineIDFrom(machineIDFiles) }

// machineIDFrom returns the first usable id of files. An image built to
// get its id at first boot holds an empty /etc/machine-id or the word
// "uninitialized" (machine-id(5)); firmware without a UUID reports zeros
// or ones. None of these names a machine.
func machineIDFrom(files []string) (string, error) {
	for _, p := range files {
		b, err := readBounded(p, 4096)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, io.EOF) {
			continue // no such file, not for this user, or empty
		}
		if err != nil {
			return "", err
		}
		if id := cleanMachineID(string(b)); usableMachineID(id) {
			return id, nil
		}
	}
	return "", ErrNotSupported
}

func usableMachineID(id string) bool {
	if id == "" || id == "uninitialized" {
		return false
	}
	digits := strings.Map(func(r rune) rune {
		if r == '-' {
			return -1
		}
		return r
	}, strings.ToLower(id))
	return strings.Trim(digits, "0") != "" && strings.Trim(digits, "f") != ""
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
