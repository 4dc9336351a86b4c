package platform

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

func TestFreeDisk(t *testing.T) {
	n, err := FreeDisk(t.TempDir())
	if errors.Is(err, ErrNotSupported) {
		t.Skip("free disk space is not available on this OS")
	}
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("FreeDisk = 0 on the test's temp dir")
	}
	if _, err := FreeDisk(t.TempDir() + "/missing"); err == nil {
		t.Fatal("FreeDisk of a missing directory: no error")
	}
}

func TestIsNoSpace(t *testing.T) {
	wrapped := &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}
	if !IsNoSpace(fmt.Errorf("stage: %w", wrapped)) {
		t.Error("ENOSPC not recognised")
	}
	if IsNoSpace(os.ErrNotExist) {
		t.Error("ErrNotExist taken for no space")
	}
}
