#!/usr/bin/env bash
# Measures the molt-supervisor OS service on this host (needs root):
#
#   scripts/service-bench.sh [ROUNDS]     # default 10
#
# Installs the service of a temporary home that runs the test agent, then
# for each round: "molt-supervisor start" until the agent says ready, and
# "molt-supervisor stop" until it returns (the agent stopped gracefully).
# Last, it kills the supervisor with SIGKILL and measures until the service
# manager has a new one running. Prints the median, minimum and maximum of
# each; everything is removed afterwards.
set -euo pipefail
rounds=${1:-10}
case "$rounds" in '' | *[!0-9]*) echo "usage: $0 [ROUNDS]" >&2; exit 2 ;; esac
if [ "$(id -u)" != 0 ]; then
	echo "service-bench.sh: installing a service needs root" >&2
	exit 1
fi
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/molt-service-bench.XXXXXX)
h=$work/home
sup=$work/molt-supervisor
cleanup() {
	"$sup" uninstall --home "$h" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

ld="-X github.com/moltfleet/molt/internal/buildinfo.Version=1.0.0"
(cd "$root" && go build -ldflags "$ld" -o "$sup" ./cmd/molt-supervisor)
mkdir -p "$h/versions/1.0.0" "$h/state"
(cd "$root" && go build -ldflags "$ld -X main.mode=healthy" -o "$h/versions/1.0.0/molt-agent" ./testdata/testagent)
touch "$h/versions/1.0.0/.valid"
echo '{"current":"1.0.0"}' >"$h/state/active.json"
"$sup" install --home "$h" >/dev/null
events=$h/testagent.events

now_ms() { echo $(($(date +%s%N) / 1000000)); }
wait_for() { # wait_for SECONDS COMMAND...: poll until COMMAND succeeds
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@"; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "service-bench.sh: timed out waiting for: $*" >&2
			exit 1
		fi
		sleep 0.01
	done
}
ready() { grep -q ' ready$' "$events" 2>/dev/null; }
stats() { # stats NAME VALUES...
	local name=$1
	shift
	printf '%s\n' "$@" | sort -n | awk -v name="$name" '
		{ v[NR] = $1 }
		END { printf "%-34s median %5d ms   min %5d ms   max %5d ms   (n=%d)\n", name, v[int((NR + 1) / 2)], v[1], v[NR], NR }'
}

starts=() stops=()
for _ in $(seq "$rounds"); do
	rm -f "$events"
	t0=$(now_ms)
	"$sup" start --home "$h" >/dev/null
	wait_for 30 ready
	t1=$(now_ms)
	"$sup" stop --home "$h" >/dev/null
	t2=$(now_ms)
	starts+=($((t1 - t0))) stops+=($((t2 - t1)))
done

supervisor_pid() {
	local p
	for p in /proc/[0-9]*; do
		if [ "$(tr '\0' ' ' 2>/dev/null <"$p/cmdline")" = "$h/bin/molt-supervisor run --home $h " ]; then
			echo "${p#/proc/}"
			return 0
		fi
	done
	return 1
}
respawns=()
"$sup" start --home "$h" >/dev/null
for _ in $(seq 3); do
	wait_for 30 supervisor_pid >/dev/null
	old=$(supervisor_pid)
	t0=$(now_ms)
	kill -KILL "$old"
	new_supervisor() { local p; p=$(supervisor_pid) && [ "$p" != "$old" ]; }
	wait_for 30 new_supervisor
	respawns+=($(($(now_ms) - t0)))
done
"$sup" stop --home "$h" >/dev/null

echo "service manager: $("$sup" status --home "$h" --json | sed -n 's/.*"system": "\(.*\)".*/\1/p')"
stats "start -> agent ready" "${starts[@]}"
stats "stop (agent stopped gracefully)" "${stops[@]}"
stats "supervisor killed -> running again" "${respawns[@]}"
