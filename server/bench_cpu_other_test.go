//go:build !unix

package server

import "time"

// processCPU: not measured here.
func processCPU() (time.Duration, bool) { return 0, false }
