#!/bin/sh
# molt-agent postinst (deb: configure [OLD]; rpm %post: 1 install, 2 upgrade).
set -e
root=${MOLT_PKG_ROOT:-}
case "$1" in
configure) if [ -n "${2:-}" ]; then mode=--upgrade; else mode=; fi ;;
1) mode= ;;
2) mode=--upgrade ;;
*) exit 0 ;;
esac
# A failed setup must not leave the package half-installed: the binaries
# are in place and the script can be run again once the cause is fixed.
"$root/usr/lib/molt/molt-agent-setup" $mode ||
	echo "molt-agent: setup failed (see above); fix it and run /usr/lib/molt/molt-agent-setup" >&2
exit 0
