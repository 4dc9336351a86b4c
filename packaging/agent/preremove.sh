#!/bin/sh
# molt-agent prerm (deb: remove | upgrade NEW | ...; rpm %preun: 0 remove,
# 1 upgrade). Only a removal stops the service: an upgrade of the package
# leaves the supervisor and its agent running.
set -e
root=${MOLT_PKG_ROOT:-}
home=$root/opt/molt
case "$1" in
remove | deconfigure | 0) ;;
*) exit 0 ;;
esac
if [ -d "$root/run/systemd/system" ]; then
	# The supervisor stops its agent and workloads within its stop grace.
	systemctl disable --now molt-supervisor.service || true
elif [ -x "$home/bin/molt-supervisor" ]; then
	"$home/bin/molt-supervisor" uninstall --home "$home" || true
fi
exit 0
