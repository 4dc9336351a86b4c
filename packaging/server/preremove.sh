#!/bin/sh
# molt-server prerm (deb: remove | upgrade NEW | ...; rpm %preun: 0 remove,
# 1 upgrade). A removal stops and disables the server; an upgrade leaves it
# to the postinst's restart.
set -e
root=${MOLT_PKG_ROOT:-}
case "$1" in
remove | deconfigure | 0) ;;
*) exit 0 ;;
esac
if [ -d "$root/run/systemd/system" ]; then
	systemctl disable --now molt-server.service || true
fi
exit 0
