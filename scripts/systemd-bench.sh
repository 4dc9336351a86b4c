#!/usr/bin/env bash
# Measures the supervisor's service under a real systemd (needs root,
# systemd-nspawn and mmdebstrap; see docs/packaging.md):
#
#   scripts/systemd-bench.sh [ROUNDS]     # default 10
#
# Boots the cached Debian root in systemd-nspawn, installs the agent's
# .deb with an agent.yaml for a molt serve on the host, and prints the
# median, minimum and maximum of "systemctl start -> agent ready" and of
# "kill -9 of the supervisor -> new supervisor running / agent ready",
# with the load average before and after.
set -euo pipefail
rounds=${1:-10}
case "$rounds" in '' | *[!0-9]*) echo "usage: $0 [ROUNDS]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
echo "load average before: $(cat /proc/loadavg)"
MOLT_REQUIRE_TOOLS=1 MOLT_SYSTEMD_ROUNDS=$rounds \
	go test ./packaging/systemdtest/ -run '^TestServiceTimesUnderSystemd$' -count=1 -v |
	grep -v -e '^=== RUN' -e '^PASS$' -e '^ok '
echo "load average after:  $(cat /proc/loadavg)"
