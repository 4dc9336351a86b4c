#!/usr/bin/env bash
# Measures the supervisor's numbers on this machine (Linux):
#   restart gap: old agent's exit (11) to the new agent's ready, over N
#                upgrades of the test agent (median, p90, max)
#   idle footprint: the supervisor's RSS and CPU time over a quiet period
#                   with a healthy agent, and its RSS with three workloads
#   workload downtime: examples/exporter across upgrades that change it
#                   (stop to ready, its own start, molt's part, the gap seen
#                   by an outside poller) and across upgrades that do not
#                   (same pid, failed GETs)
# Usage: scripts/bench-supervisor.sh [UPGRADES [IDLE]]   (defaults 20, 60s)
set -euo pipefail
cd "$(dirname "$0")/.."
upgrades=${1:-20}
idle=${2:-60s}
go test -run '^$' -bench 'RestartGap|IdleFootprint|WorkloadDowntime|WorkloadFootprint' -benchtime 1x -timeout 15m \
	./supervisor -args -upgrades "$upgrades" -idle "$idle" |
	grep -E 'restart gap|open files|idle for|workload|^(ok|FAIL)'
