#!/bin/sh
# script-agent: an example molt workload in POSIX shell, for any program
# that is not Go. It speaks molt's file protocols (docs/workloads.md):
#
#   ready  create $MOLT_READY_FILE (for a "file: true" ready check)
#   busy   write $MOLT_HOLDS_DIR/<id>.json atomically while it works,
#          remove it after
#
# It prints a heartbeat every HEARTBEAT_EVERY seconds (the supervisor keeps
# stdout in logs/workload-script-agent-<v>.log), "works" for WORK_FOR
# seconds every WORK_EVERY heartbeats, and exits 0 on SIGTERM or SIGINT,
# releasing its hold. Outside molt (MOLT_* unset) it runs without ready
# file and holds.
set -u

HEARTBEAT_EVERY=${HEARTBEAT_EVERY:-5}
WORK_EVERY=${WORK_EVERY:-12}
WORK_FOR=${WORK_FOR:-20}
name=${MOLT_WORKLOAD:-script-agent}
# A hold id is 1 to 64 of a-z 0-9 _ . - : the workload's name and the pid.
hold_id="$name-$$"
holding=
sleeper=

log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $name: $*"; }

# ready creates the ready file by renaming a complete temp file, so the
# supervisor never sees a half-written one.
ready() {
	[ -n "${MOLT_READY_FILE:-}" ] || return 0
	dir=$(dirname "$MOLT_READY_FILE")
	mkdir -p "$dir" &&
		echo "$$" >"$dir/.$(basename "$MOLT_READY_FILE").tmp" &&
		mv -f "$dir/.$(basename "$MOLT_READY_FILE").tmp" "$MOLT_READY_FILE"
}

# hold REASON: REASON is one line, at most 256 characters, and must not
# need JSON escaping (no " or \). With "pid", the hold ends when this
# shell exits, even by kill -9. A torn file after a power cut is
# unreadable, and the agent removes unreadable hold files.
hold() {
	[ -n "${MOLT_HOLDS_DIR:-}" ] || return 0
	# Set first: a signal from here on runs stop, which must remove the
	# file this writes.
	holding=1
	mkdir -p "$MOLT_HOLDS_DIR" &&
		printf '{"reason": "%s", "pid": %d, "created": "%s"}\n' \
			"$1" "$$" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$MOLT_HOLDS_DIR/.$hold_id.tmp" &&
		mv -f "$MOLT_HOLDS_DIR/.$hold_id.tmp" "$MOLT_HOLDS_DIR/$hold_id.json"
}

release() {
	[ -n "$holding" ] || return 0
	rm -f "$MOLT_HOLDS_DIR/.$hold_id.tmp" "$MOLT_HOLDS_DIR/$hold_id.json"
	holding=
}

# nap sleeps in the background and waits for it: a shell runs a trap only
# between commands, and "wait" is interrupted by a signal where a
# foreground sleep is not. The stop signal goes to the whole process
# group, sleep included: 2>/dev/null keeps the shell's "Terminated" about
# it out of the log.
nap() {
	sleep "$1" &
	sleeper=$!
	wait "$sleeper" 2>/dev/null
	sleeper=
}

stop() {
	log "stopping"
	# $! as well as $sleeper: a signal between "sleep &" and the assignment
	# runs this before $sleeper is set, and only the process itself may
	# have been signalled (kill PID, not the group).
	kill ${sleeper:-} ${!:-} 2>/dev/null
	release
	exit 0
}
trap stop TERM INT

log "started (version ${MOLT_WORKLOAD_VERSION:-none}, pid $$)"
ready || log "cannot write the ready file"
beat=0
while :; do
	beat=$((beat + 1))
	log "heartbeat $beat"
	if [ -n "${MOLT_DATA_DIR:-}" ]; then
		echo "$beat" >"$MOLT_DATA_DIR/heartbeat"
	fi
	if [ $((beat % WORK_EVERY)) -eq 0 ]; then
		hold "script-agent batch $beat" || log "working without a hold"
		log "working on batch $beat"
		nap "$WORK_FOR"
		release
		log "batch $beat done"
	fi
	nap "$HEARTBEAT_EVERY"
done
