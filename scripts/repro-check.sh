#!/usr/bin/env bash
# Checks that release builds are reproducible: builds the same commit and
# version twice with scripts/build.sh, for linux/amd64 and windows/amd64,
# into two directories, the second with an empty Go build cache (so no
# object of the first build is reused), and compares every binary with cmp.
# Prints each binary's size; exits 1 on any difference.
#
#   scripts/repro-check.sh [VERSION]
set -euo pipefail
version=${1:-0.0.0-repro}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/molt-repro.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
platforms=(linux/amd64 windows/amd64)
"$root/scripts/build.sh" "$version" "$tmp/a" "${platforms[@]}" >/dev/null
GOCACHE="$tmp/cache" "$root/scripts/build.sh" "$version" "$tmp/b" "${platforms[@]}" >/dev/null
status=0
for p in "${platforms[@]}"; do
	dir=${p/\//_}
	for f in "$tmp/a/$dir"/*; do
		name=$dir/$(basename "$f")
		size=$(stat -c %s "$f")
		if cmp -s "$f" "$tmp/b/$name"; then
			printf '%-32s %10d bytes  identical\n' "$name" "$size"
		else
			printf '%-32s %10d bytes  DIFFERS (second build: %d bytes)\n' "$name" "$size" "$(stat -c %s "$tmp/b/$name")"
			status=1
		fi
	done
done
if [ $status -ne 0 ]; then
	echo "repro-check: builds of $version differ" >&2
else
	echo "repro-check: two builds of $version are identical"
fi
exit $status
