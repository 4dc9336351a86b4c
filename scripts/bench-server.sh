#!/bin/sh
# Measures the control server on this machine: check-in capacity (idle
# agents in long polls, check-in latency without the wait, server RSS) and a
# run over many simulated agents (time to complete, peak in progress).
# Every agent is a goroutine speaking HTTPS to a real molt serve process on
# loopback with the real agent's HTTP client (agent.NewHTTPClient, HTTP/1.1),
# one client and one keep-alive connection each. The BENCH line prints
# check-ins/s, client p50/p99 (without the long-poll wait), the server's
# p99 from its histogram, check-ins that needed a new connection, and the
# server's RSS.
#
#   scripts/bench-server.sh                       # 10,000 agents, run of 1,000 at 100
#   MOLT_BENCH_AGENTS=20000 scripts/bench-server.sh
#
# Knobs: MOLT_BENCH_AGENTS (10000), MOLT_BENCH_POLL_SECONDS (30),
# MOLT_BENCH_SECONDS (60), MOLT_BENCH_RUN_AGENTS (1000),
# MOLT_BENCH_MAX_CONCURRENT (100), MOLT_BENCH_HTTP2=1 (one HTTP/2 connection
# per agent instead of HTTP/1.1), MOLT_BENCH_MEMORY_LIMIT_MB (--memory-limit),
# MOLT_BENCH_DEBUG_LISTEN=ADDR and MOLT_BENCH_HEAP_OUT=FILE (heap profile). Needs a file descriptor limit above the
# agent count (ulimit -n).
set -eu
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
MOLT_BENCH=1 go test ./server -run '^(TestBenchCheckinCapacity|TestBenchRun)$' -count=1 -v -timeout 60m "$@" | grep --line-buffered -E '^(BENCH|--- |FAIL|ok)|enrolled'
