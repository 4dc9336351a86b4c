#!/usr/bin/env bash
# Prints the updater's numbers (docs/updater.md, "Numbers"):
#   - download + verify + stage of a 20 MB pack from a loopback server
#     against the raw bound (SHA-256 + write + fsync of the same bytes),
#     target ratio >= 0.7;
#   - peak RSS growth of a process staging a 200 MB artifact, target < 16 MB.
#
#   scripts/bench-updater.sh            # 20 iterations, once
#   BENCHTIME=40x COUNT=3 scripts/bench-updater.sh
#
# The machine's load average is printed first: on a shared machine the
# ratio moves with it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -r /proc/loadavg ]; then
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(getconf _NPROCESSORS_ONLN) CPUs"
fi
exec go test ./updater/ -run '^$' -bench . -benchtime "${BENCHTIME:-20x}" -count "${COUNT:-1}"
