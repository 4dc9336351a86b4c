#!/usr/bin/env bash
# Measures the supervisor's numbers on this machine (Linux), for the
# README's performance table:
#   restart gap (test agent): old agent's exit (11) to the new agent's
#                ready, over N upgrades of testdata/testagent, which says
#                ready at once: the supervisor's own part
#   restart gap (real agent): the same for the real molt-agent, enrolled
#                with a real `molt serve` the benchmark starts, upgraded
#                back and forth by `molt-agent upgrade --pack` (it stages,
#                switches and exits 11); alone, and with examples/exporter
#                in both packs; with the agent's own start (start to ready)
#   idle footprint: the supervisor's RSS and CPU time over a quiet period
#                   with a healthy agent, and its RSS with three workloads
#   workload downtime: examples/exporter across upgrades that change it
#                   (stop to ready, its own start, molt's part, the gap seen
#                   by an outside poller) and across upgrades that do not
#                   (same pid, failed GETs)
# Usage: scripts/bench-supervisor.sh [UPGRADES [IDLE [RESTARTS]]]   (defaults 20, 60s, 20)
# The load average is printed before and after. Everything goes into a
# temporary directory of its own, removed at the end; what the run would
# have left there is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
upgrades=${1:-20}
idle=${2:-60s}
restarts=${3:-20}
load() {
	echo "load average $1: $(cut -d' ' -f1-3 /proc/loadavg), $(getconf _NPROCESSORS_ONLN) CPUs"
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/molt-bench-supervisor.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export TMPDIR=$tmp
load before
go test -c -o "$tmp/supervisor.test" ./supervisor
(cd supervisor && "$tmp/supervisor.test" -test.run '^$' \
	-test.bench 'RestartGap|RealAgentRestart|IdleFootprint|WorkloadDowntime|WorkloadFootprint' \
	-test.benchtime 1x -test.timeout 15m \
	-upgrades "$upgrades" -idle "$idle" -restarts "$restarts") |
	grep -E 'restart gap|open files|idle for|workload|^(ok|PASS|FAIL)|--- FAIL|_test.go'
load after
rm -f "$tmp/supervisor.test"
left=$(find "$tmp" -mindepth 1 -maxdepth 1 | sed "s|^$tmp/||" | tr '\n' ' ')
echo "left behind in the temporary directory: ${left:-nothing}"
