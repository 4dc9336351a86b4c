//go:build !faults

package faults

import "testing"

// Without the build tag a point never fires, whatever the environment.
func TestPointsAreInertWithoutTag(t *testing.T) {
	t.Setenv("MOLT_FAULT", "test/point")
	Point("test/point")
	PointAfterFlush("test/point", nil)
}
