//go:build !faults

package faults

// Point is a crash point. Release builds compile it to nothing.
func Point(name string) {}

// PointAfterFlush is a crash point after a response was handed to the
// network (w is flushed first in a faults build). Release builds compile
// it to nothing.
func PointAfterFlush(name string, w any) {}
