#!/bin/sh
# molt-server postrm. /var/lib/molt (the database, packs, tokens) and the
# user molt are kept, also on purge: removing a fleet's history is not a
# package manager's call.
set -e
root=${MOLT_PKG_ROOT:-}
case "$1" in
remove | purge | 0) ;;
*) exit 0 ;;
esac
if [ -d "$root/run/systemd/system" ]; then
	systemctl daemon-reload || true
fi
if [ -d "$root/var/lib/molt" ]; then
	echo "molt-server: /var/lib/molt and the user molt kept; remove them with: rm -rf /var/lib/molt && userdel molt"
fi
exit 0
