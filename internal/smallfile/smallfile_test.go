package smallfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string // "" for no file
		limit   int64
		want    string
		wantErr error
	}{
		{"under", "abc", 4, "abc", nil},
		{"at the limit", "abcd", 4, "abcd", nil},
		{"over", "abcde", 4, "", ErrTooLarge},
		{"empty limit", "a", 0, "", ErrTooLarge},
		{"missing", "", 4, "", fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if tt.content != "" {
				if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			b, err := Read(p, tt.limit)
			if !errors.Is(err, tt.wantErr) || string(b) != tt.want {
				t.Fatalf("Read = %q, %v; want %q, %v", b, err, tt.want, tt.wantErr)
			}
			var pe *fs.PathError
			if err != nil && (!errors.As(err, &pe) || pe.Path != p) {
				t.Fatalf("error %v does not name %s", err, p)
			}
		})
	}
}
