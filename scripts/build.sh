#!/usr/bin/env bash
# Builds molt, molt-agent and molt-supervisor with VERSION stamped in.
#
#   scripts/build.sh VERSION OUTDIR [GOOS/GOARCH ...]
#
# Binaries land in OUTDIR/<goos>_<goarch>/. Without platforms, the host's.
#
# Release builds are lean and reproducible: no symbol table or DWARF (-s -w;
# with them any binary patch is a quarter to half of the file), no file
# system paths (-trimpath), no build id (-buildid=, a hash of the inputs that
# would differ with every version string) and no VCS stamp (-buildvcs=false:
# the commit is stamped below; the stamp would add the tree's dirty flag and
# commit time). The same commit and version give the same bytes:
# scripts/repro-check.sh checks it.
set -euo pipefail
if [ $# -lt 2 ]; then
	echo "usage: scripts/build.sh VERSION OUTDIR [GOOS/GOARCH ...]" >&2
	exit 2
fi
version=$1 out=$2
shift 2
case "$version" in
*[!0-9A-Za-z.+-]* | "") echo "build.sh: bad version '$version'" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 0 ]; then
	set -- "$(go env GOOS)/$(go env GOARCH)"
fi
# MOLT_COMMIT names the commit of a tree that is not a git checkout
# (scripts/repro-check.sh builds from git archive).
commit=${MOLT_COMMIT:-$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
pkg=github.com/moltfleet/molt/internal/buildinfo
ldflags="-s -w -buildid= -X $pkg.Version=$version -X $pkg.Commit=$commit"
mkdir -p "$out"
out=$(cd "$out" && pwd)
for p in "$@"; do
	goos=${p%/*} goarch=${p#*/}
	if [ -z "$goos" ] || [ -z "$goarch" ] || [ "$goos" = "$p" ]; then
		echo "build.sh: bad platform '$p' (want GOOS/GOARCH)" >&2
		exit 2
	fi
	ext=""
	[ "$goos" = windows ] && ext=.exe
	dir="$out/${goos}_${goarch}"
	mkdir -p "$dir"
	for cmd in molt molt-agent molt-supervisor; do
		(cd "$root" && CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build -trimpath -buildvcs=false \
			-ldflags "$ldflags" -o "$dir/$cmd$ext" "./cmd/$cmd")
	done
	echo "built $version for $goos/$goarch in $dir"
done
