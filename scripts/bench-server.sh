#!/bin/sh
# Measures the control server on this machine: check-in capacity (idle
# agents in long polls, check-in latency without the wait, server CPU and
# RSS) and a run over many simulated agents (time to complete, peak in
# progress, server CPU per 1,000 deployments, changes per commit, the load
# generator's own CPU).
# Every agent is a goroutine speaking HTTPS to a real molt serve process on
# loopback with the real agent's HTTP client (agent.NewHTTPClient, HTTP/1.1),
# one client and one keep-alive connection each; the agents run in the
# go test process, the server in its own. Each BENCH line starts with the
# settings it was measured with. Latency is what the agent waits beyond the
# moment the server should have answered (the end of the poll wait), at
# p50/p99/p99.9/max; the server's own processing is its histogram, printed
# per bucket. A figure that cannot be measured prints as unknown.
#
# The script fails (exit status not 0) when any check-in failed, a dial
# was refused or a poll was answered early: such a load measures nothing.
#
#   scripts/bench-server.sh                       # 10,000 agents at 30 s poll, run of 1,000 at 100
#   MOLT_BENCH_AGENTS=19000 scripts/bench-server.sh -run TestBenchCheckinCapacity
#
# Knobs: MOLT_BENCH_AGENTS (10000), MOLT_BENCH_POLL_SECONDS (30),
# MOLT_BENCH_SECONDS (60, measured after one poll period of warm-up),
# MOLT_BENCH_RUN_AGENTS (1000), MOLT_BENCH_MAX_CONCURRENT (100, or a share
# like 5%), MOLT_BENCH_CANARY (0) and MOLT_BENCH_WAVES (e.g. 1%,10%,100%),
# MOLT_BENCH_HTTP2=1 (one HTTP/2 connection per agent instead of HTTP/1.1),
# MOLT_BENCH_MEMORY_LIMIT_MB (--memory-limit), MOLT_BENCH_DEBUG_LISTEN=ADDR
# and MOLT_BENCH_HEAP_OUT=FILE (heap profile), MOLT_BENCH_PROFILE_DIR=DIR
# (CPU profiles and execution traces of the server and of the load
# generator, taken during the measurement).
# Both processes need a file descriptor limit above the agent count plus
# 100: the hard limit (ulimit -Hn) sets how many agents this machine can
# simulate.
set -eu
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
st=$(mktemp "${TMPDIR:-/tmp}/molt-bench-server.XXXXXX")
trap 'rm -f "$st"' EXIT
# The pipe keeps the output live; go test's own exit status is kept in $st.
{
	s=0
	MOLT_BENCH=1 go test ./server -run '^(TestBenchCheckinCapacity|TestBenchRun)$' -count=1 -v -timeout 60m "$@" 2>&1 || s=$?
	echo "$s" >"$st"
} | grep --line-buffered -E '^(BENCH|--- |FAIL|ok|panic)|enrolled|bench_.*_test\.go' || true
status=$(cat "$st")
if [ "$status" -ne 0 ]; then
	echo "bench-server: FAILED (go test exit status $status): the figures above are not valid" >&2
fi
exit "$status"
