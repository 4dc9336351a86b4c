#!/usr/bin/env bash
# Prints the updater's numbers (the README's performance table):
#   - download + verify + stage of a 20 MB pack from a loopback HTTPS
#     server, against the bound measured in the same run (SHA-256 and
#     write + fsync of the same bytes, overlapped), target ratio >= 0.8,
#     and against what an operator would otherwise do (curl + sha256sum of
#     the same files from the same server; "unknown" without them);
#   - peak RSS growth of a process staging a 200 MB artifact (from a pack
#     file and over HTTPS), target < 16 MB: run once, whatever BENCHTIME;
#   - a workload of 500 small files over loopback HTTP, ms per file, 3 runs.
#
#   scripts/bench-updater.sh                 # 20 iterations, once (about 1 minute)
#   BENCHTIME=40x COUNT=3 scripts/bench-updater.sh
#
# The load average is printed before and after: on a shared machine the
# figures move with it. Everything goes into a temporary directory of its
# own, removed at the end; what a run would have left there is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
load() {
	if [ -r /proc/loadavg ]; then
		echo "load average $1: $(cut -d' ' -f1-3 /proc/loadavg), $(getconf _NPROCESSORS_ONLN) CPUs"
	fi
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/molt-bench-updater.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
export TMPDIR=$tmp
load before
go test -c -o "$tmp/updater.test" ./updater/
(cd updater && "$tmp/updater.test" -test.run '^$' -test.bench 'Prepare20MB' \
	-test.benchtime "${BENCHTIME:-20x}" -test.count "${COUNT:-1}")
(cd updater && "$tmp/updater.test" -test.run '^$' -test.bench 'StageMemory' -test.benchtime 1x)
(cd updater && "$tmp/updater.test" -test.run '^$' -test.bench 'ManySmallFiles' -test.benchtime 3x)
load after
rm -f "$tmp/updater.test"
left=$(find "$tmp" -mindepth 1 -maxdepth 1 | sed "s|^$tmp/||" | tr '\n' ' ')
echo "left behind in the temporary directory: ${left:-nothing}"
