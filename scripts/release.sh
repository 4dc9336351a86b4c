#!/usr/bin/env bash
# Makes a release: binaries, archives, deb/rpm packages, the MSI, and
# SHA256SUMS signed with the release key (docs/packaging.md).
#
#   MOLT_RELEASE_KEY=~/.molt-release/molt.key scripts/release.sh VERSION [OUTDIR]
#
# OUTDIR defaults to dist/VERSION; binaries go to OUTDIR/bin (the layout
# molt pack build --bin-dir takes), the artifacts to OUTDIR itself.
#
# Environment:
#   MOLT_RELEASE_KEY        the release secret key (minisign format; molt pack keygen)
#   MOLT_PACK_PASSPHRASE    its passphrase, when it is encrypted
#   MOLT_RELEASE_PLATFORMS  GOOS/GOARCH list (default: linux/amd64 linux/arm64 windows/amd64 darwin/arm64)
#   MOLT_RELEASE_FLAGS      more flags for the release program: --unsigned, --no-msi
#   SOURCE_DATE_EPOCH       file times inside archives and packages (default: the commit's time)
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: scripts/release.sh VERSION [OUTDIR]" >&2
	exit 2
fi
version=$1
root=$(cd "$(dirname "$0")/.." && pwd)
out=${2:-$root/dist/$version}
read -r -a platforms <<<"${MOLT_RELEASE_PLATFORMS:-linux/amd64 linux/arm64 windows/amd64 darwin/arm64}"
read -r -a flags <<<"${MOLT_RELEASE_FLAGS:-}"
commit=$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
mtime=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}

"$root/scripts/build.sh" "$version" "$out/bin" "${platforms[@]}"
args=(--version "$version" --bin-dir "$out/bin" --out "$out" --root "$root" --mtime "$mtime" --commit "$commit" --measure-unstripped)
for p in "${platforms[@]}"; do
	args+=(--platform "$p")
done
cd "$root"
go run ./internal/release/cmd/release "${args[@]}" "${flags[@]}"
