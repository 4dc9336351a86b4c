package main

import "fmt"

// fdHeadroom is what molt serve needs besides one descriptor per agent:
// the listeners, the database with its journal, log files, packs being
// served, hooks' pipes.
const fdHeadroom = 100

// fdCheck is what molt serve says at start about its file descriptor
// limit. Every agent holds one connection (its long poll), so the limit
// bounds the fleet one server can hold: past it, accept fails and agents'
// check-ins fail with it.
type fdCheck struct {
	soft, hard uint64 // the limit after raising the soft one to the hard one
	before     uint64 // the soft limit at start
	enrolled   int    // agents enrolled and not revoked
}

// capacity is how many agents the limit lets this server hold at once.
func (c fdCheck) capacity() int {
	if c.soft <= fdHeadroom {
		return 0
	}
	return int(c.soft - fdHeadroom)
}

// message is the line printed at start and whether it is a warning:
// more agents are enrolled than the limit lets the server hold.
func (c fdCheck) message() (string, bool) {
	raised := ""
	if c.before < c.soft {
		raised = fmt.Sprintf(", raised from %d", c.before)
	}
	if c.enrolled > c.capacity() {
		return fmt.Sprintf("warning: file descriptor limit %d (hard %d%s) holds about %d agents at once, but %d are enrolled: the others' check-ins will fail; raise the hard limit (LimitNOFILE= in the systemd unit, ulimit -Hn; docs/server.md)",
			c.soft, c.hard, raised, c.capacity(), c.enrolled), true
	}
	return fmt.Sprintf("file descriptors: limit %d (hard %d%s): this server holds about %d agents at once (%d enrolled); LimitNOFILE= in the systemd unit raises it (docs/server.md)",
		c.soft, c.hard, raised, c.capacity(), c.enrolled), false
}
