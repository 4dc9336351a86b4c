#!/usr/bin/env bash
# Prepares Wine for running molt's Windows binaries on Debian.
#
#   eval "$(scripts/wine-setup.sh)"        # set up, check, export the env
#   scripts/wine-setup.sh --no-check       # skip the Go binary check
#
# Idempotent: installs wine64 and gcc-mingw-w64-x86-64 with apt-get only when
# missing, creates the Wine prefix ($WINEPREFIX, default /tmp/molt-wine) only
# when it does not exist, and rebuilds the DLL below only when it changed.
#
# Go 1.22+ on Windows takes its random numbers from ProcessPrng in
# bcryptprimitives.dll. Wine 8 (Debian 12) has no such DLL, so every Go
# binary dies at start. We build a tiny native one that answers ProcessPrng
# with RtlGenRandom (advapi32's SystemFunction036) and put it into the
# prefix's system32.
#
# Progress goes to stderr; stdout carries only the export lines, so the
# output can be eval'ed. Tests find Wine through MOLT_WINE and the DLL in
# $WINEPREFIX; each runs in a copy of a prefix booted once per machine
# (internal/testtool, cached in /var/cache/molt-test or MOLT_WINE_CACHE).
set -euo pipefail

check=1
for a in "$@"; do
	case "$a" in
	--no-check) check=0 ;;
	-h | --help)
		sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "wine-setup.sh: unknown argument '$a' (try --help)" >&2
		exit 2
		;;
	esac
done

say() { echo "wine-setup: $*" >&2; }

wine=/usr/lib/wine/wine64
cc=x86_64-w64-mingw32-gcc
prefix=${WINEPREFIX:-/tmp/molt-wine}
root=$(cd "$(dirname "$0")/.." && pwd)

export WINEPREFIX=$prefix
export WINEDEBUG=-all
# No Mono or Gecko: they are not needed and their installers would prompt.
export WINEDLLOVERRIDES="mscoree,mshtml="
export DISPLAY=

need=()
[ -x "$wine" ] || need+=(wine64)
command -v "$cc" >/dev/null 2>&1 || need+=(gcc-mingw-w64-x86-64)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		say "need root to install ${need[*]}"
		exit 1
	fi
	say "installing ${need[*]}"
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
else
	say "wine64 and mingw-w64 already installed"
fi

if [ ! -f "$prefix/system.reg" ]; then
	say "creating Wine prefix $prefix"
	mkdir -p "$prefix"
	"$wine" wineboot --init >&2 2>/dev/null || true
	/usr/lib/wine/wineserver -w
	if [ ! -f "$prefix/system.reg" ]; then
		say "wineboot did not create $prefix"
		exit 1
	fi
else
	say "Wine prefix $prefix exists"
fi

sys32=$prefix/drive_c/windows/system32
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/bcryptprimitives.c" <<'EOF'
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* ProcessPrng never fails on Windows; callers (the Go runtime) do not
   check for a short read, so loop over RtlGenRandom's ULONG limit. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T size)
{
	while (size > 0) {
		ULONG n = size > 0x40000000 ? 0x40000000 : (ULONG)size;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		size -= n;
	}
	return TRUE;
}
EOF
# Built inside $work with relative names and no timestamp, so the bytes are
# the same every run and the cmp below can tell "up to date".
(cd "$work" && "$cc" -shared -O2 -s -Wl,--no-insert-timestamp -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32)
if cmp -s "$work/bcryptprimitives.dll" "$sys32/bcryptprimitives.dll"; then
	say "bcryptprimitives.dll up to date"
else
	say "installing bcryptprimitives.dll (ProcessPrng) into $sys32"
	cp "$work/bcryptprimitives.dll" "$sys32/bcryptprimitives.dll"
fi

if [ $check = 1 ]; then
	if ! command -v go >/dev/null 2>&1; then
		say "go not found; skipping the Go binary check"
	else
		say "checking a Go $(go env GOVERSION) windows/amd64 binary"
		(cd "$root" && CGO_ENABLED=0 GOOS=windows GOARCH=amd64 go build \
			-ldflags "-X github.com/moltfleet/molt/internal/buildinfo.Version=0.0.0-wine" \
			-o "$work/molt-supervisor.exe" ./cmd/molt-supervisor)
		# Into a file, not a pipe: the wineserver this starts inherits
		# stderr and would hold a pipe open until the session ends.
		"$wine" "$work/molt-supervisor.exe" version >"$work/out" 2>&1 || {
			say "molt-supervisor.exe version failed: $(tr -d '\r' <"$work/out")"
			exit 1
		}
		out=$(tr -d '\r' <"$work/out")
		case "$out" in
		*0.0.0-wine*) say "ok: $out" ;;
		*)
			say "unexpected output from molt-supervisor.exe version: $out"
			exit 1
			;;
		esac
	fi
fi

cat <<EOF
export WINEPREFIX=$prefix
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="
export MOLT_WINE=$wine
EOF
