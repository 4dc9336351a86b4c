//go:build !windows

package platform

import (
	"errors"
	"syscall"
)

func isNoSpace(err error) bool { return errors.Is(err, syscall.EDQUOT) }
