#!/usr/bin/env bash
# Measures the web console's Fleet page in headless Chromium over a real
# molt serve holding MOLT_BENCH_CONSOLE_AGENTS (default 50,000) enrolled
# agents: the first page rendered and a filter applied (issue 12's
# targets: 1 s and 300 ms). Needs chromium (apt-get install chromium).
#
#   scripts/bench-console.sh
#   MOLT_BENCH_CONSOLE_AGENTS=10000 scripts/bench-console.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MOLT_BENCH=1 go test ./console -run '^TestBenchConsoleFleet$' -count=1 -v -timeout 30m "$@" 2>&1 |
	grep --line-buffered -E '^(BENCH|--- |FAIL|ok|panic)|screenshot|_test\.go'
