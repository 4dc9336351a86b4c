#!/usr/bin/env bash
# What the web console adds to the molt binary (issue 12: at most 2 MB):
# builds molt with and without the console's files (tag noconsole) as
# scripts/build.sh builds releases (-trimpath, stripped) and prints both.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-trimpath -ldflags "-s -w")
GOOS=${GOOS:-linux} GOARCH=${GOARCH:-amd64} go build "${flags[@]}" -o "$out/with" ./cmd/molt
GOOS=${GOOS:-linux} GOARCH=${GOARCH:-amd64} go build "${flags[@]}" -tags noconsole -o "$out/without" ./cmd/molt
with=$(stat -c %s "$out/with")
without=$(stat -c %s "$out/without")
files=$(du -cb console/assets/* | tail -1 | cut -f1)
printf 'molt with the console:    %10d bytes\n' "$with"
printf 'molt without the console: %10d bytes\n' "$without"
printf 'the console adds:         %10d bytes (%.2f MB; budget 2 MB); its files are %d bytes\n' \
	$((with - without)) "$(echo "($with - $without) / 1000000" | bc -l)" "$files"
[ $((with - without)) -le 2000000 ] || { echo "over budget"; exit 1; }
