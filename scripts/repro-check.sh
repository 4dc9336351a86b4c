#!/usr/bin/env bash
# Checks that release builds are reproducible: builds the committed HEAD
# twice with its scripts/build.sh, for linux/amd64 and windows/amd64, from
# two copies of the tree at different paths (git archive), the second with
# an empty Go build cache so that nothing of the first build is reused, and
# compares every binary with cmp. Prints each binary's size; exits 1 on any
# difference. Uncommitted changes are not part of the check.
#
#   scripts/repro-check.sh [VERSION]
#
# REPRO_PLATFORMS overrides the platforms (space-separated), e.g.
# REPRO_PLATFORMS=linux/amd64 for a quicker check.
set -euo pipefail
version=${1:-0.0.0-repro}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/molt-repro.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
commit=$(git -C "$root" rev-parse --short=12 HEAD)
read -r -a platforms <<<"${REPRO_PLATFORMS:-linux/amd64 windows/amd64}"
for side in a b; do
	mkdir -p "$tmp/src-$side"
	git -C "$root" archive HEAD | tar -x -C "$tmp/src-$side"
done
start=$(date +%s)
MOLT_COMMIT=$commit "$tmp/src-a/scripts/build.sh" "$version" "$tmp/a" "${platforms[@]}" >/dev/null
mid=$(date +%s)
GOCACHE="$tmp/cache" MOLT_COMMIT=$commit "$tmp/src-b/scripts/build.sh" "$version" "$tmp/b" "${platforms[@]}" >/dev/null
end=$(date +%s)
echo "commit $commit, version $version: first build $((mid - start)) s, second (empty build cache) $((end - mid)) s"
status=0
for p in "${platforms[@]}"; do
	dir=${p/\//_}
	for f in "$tmp/a/$dir"/*; do
		name=$dir/$(basename "$f")
		size=$(stat -c %s "$f")
		if cmp -s "$f" "$tmp/b/$name"; then
			printf '%-34s %10d bytes  identical\n' "$name" "$size"
		else
			printf '%-34s %10d bytes  DIFFERS (second build: %d bytes)\n' "$name" "$size" "$(stat -c %s "$tmp/b/$name")"
			status=1
		fi
	done
done
if [ $status -ne 0 ]; then
	echo "repro-check: two builds of $commit as $version differ" >&2
else
	echo "repro-check: two builds of $commit as $version are identical"
fi
exit $status
