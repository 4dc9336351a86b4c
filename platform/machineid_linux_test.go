package platform

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The first file with a usable id wins; an image's placeholder, zeros
// and missing files are passed over, down to the firmware's UUID.
func TestMachineIDFrom(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := file("empty", "")
	uninit := file("uninit", "uninitialized\n")
	zeros := file("zeros", "00000000-0000-0000-0000-000000000000\n")
	ones := file("ones", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF\n")
	dbus := file("dbus", "0123456789abcdef0123456789abcdef\n")
	dmi := file("dmi", "4c4c4544-0042-3510-8052-b4c04f4e4d32\n")
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name  string
		files []string
		want  string
	}{
		{"machine-id first", []string{dbus, dmi}, "0123456789abcdef0123456789abcdef"},
		{"placeholders passed over", []string{missing, empty, uninit, dmi}, "4c4c4544-0042-3510-8052-b4c04f4e4d32"},
		{"firmware without a UUID", []string{zeros, ones, dbus}, "0123456789abcdef0123456789abcdef"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := machineIDFrom(tc.files)
			if err != nil || got != tc.want {
				t.Fatalf("machineIDFrom = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if got, err := machineIDFrom([]string{missing, empty, uninit, zeros}); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("machineIDFrom(no usable id) = %q, %v; want ErrNotSupported", got, err)
	}
}
