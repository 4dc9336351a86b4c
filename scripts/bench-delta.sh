#!/usr/bin/env bash
# Delta updates in numbers: bytes on the wire per host for a patch release
# and a minor release, with patches and in full, and the time and memory to
# apply each patch (BenchmarkDeltaRelease in updater/pack).
#
#   scripts/bench-delta.sh [DIR]
#
# Builds, with scripts/build.sh (stripped, reproducible), for linux/amd64
# (MOLT_BENCH_PLATFORMS to change):
#   1.0.0  the commit MINOR_FROM (default HEAD~100): the older minor release
#   1.1.0  HEAD, packed with --delta-from 1.0.0: the minor release
#   1.1.1  HEAD with a one-line change in the agent's Go source (a log
#          message in agent/order.go), packed with --delta-from 1.1.0
# Sources are exported with git archive (committed state), so the trees are
# clean. DIR keeps the packs: run again with the same DIR and only the
# benchmark runs (as under the shared bench lock). Without DIR, a
# temporary directory is removed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
minor_from=${MINOR_FROM:-HEAD~100}
read -r -a platforms <<<"${MOLT_BENCH_PLATFORMS:-linux/amd64}"
if [ $# -ge 1 ]; then
	dir=$1
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
else
	dir=$(mktemp -d "${TMPDIR:-/tmp}/molt-bench-delta.XXXXXX")
	trap 'chmod -R u+w "$dir" 2>/dev/null; rm -rf "$dir"' EXIT
fi

# tree COMMIT DEST: the commit's files, built with this checkout's build.sh.
tree() {
	rm -rf "$2"
	mkdir -p "$2"
	git -C "$root" archive "$1" | tar -x -C "$2"
	cp "$root/scripts/build.sh" "$2/scripts/build.sh"
}

if [ ! -f "$dir/1.1.1.zip" ]; then
	go build -C "$root" -o "$dir/molt" ./cmd/molt
	"$dir/molt" pack keygen --out "$dir/key" --no-passphrase --kdf interactive --force >/dev/null
	tree "$minor_from" "$dir/src-1.0.0"
	tree HEAD "$dir/src-1.1.0"
	tree HEAD "$dir/src-1.1.1"
	before=$(md5sum <"$dir/src-1.1.1/agent/order.go")
	sed -i 's/log.Info("upgrade order", /log.Info("upgrade order received", /' "$dir/src-1.1.1/agent/order.go"
	if [ "$before" = "$(md5sum <"$dir/src-1.1.1/agent/order.go")" ]; then
		echo "bench-delta: the one-line change did not apply to agent/order.go" >&2
		exit 1
	fi
	for v in 1.0.0 1.1.0 1.1.1; do
		(cd "$dir/src-$v" && scripts/build.sh "$v" "$dir/bin-$v" "${platforms[@]}" >/dev/null)
		rm -f "$dir"/bin-$v/*/molt "$dir"/bin-$v/*/molt.exe
	done
	pf=()
	for p in "${platforms[@]}"; do pf+=(--platform "$p"); done
	"$dir/molt" pack build --version 1.0.0 --bin-dir "$dir/bin-1.0.0" --key "$dir/key/molt.key" "${pf[@]}" --out "$dir/1.0.0.zip"
	start=$(date +%s.%N)
	"$dir/molt" pack build --version 1.1.0 --bin-dir "$dir/bin-1.1.0" --key "$dir/key/molt.key" "${pf[@]}" \
		--delta-from "$dir/1.0.0.zip" --out "$dir/1.1.0.zip"
	"$dir/molt" pack build --version 1.1.1 --bin-dir "$dir/bin-1.1.1" --key "$dir/key/molt.key" "${pf[@]}" \
		--delta-from "$dir/1.1.0.zip" --out "$dir/1.1.1.zip"
	echo "the two builds with patches took $(echo "$(date +%s.%N) - $start" | bc) s"
fi
cd "$root"
MOLT_BENCH_DELTA="patch=$dir/1.1.0.zip:$dir/1.1.1.zip,minor=$dir/1.0.0.zip:$dir/1.1.0.zip" \
	go test -run '^$' -bench BenchmarkDeltaRelease -benchtime 5x ./updater/pack/
