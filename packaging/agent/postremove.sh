#!/bin/sh
# molt-agent postrm (deb: remove | purge | upgrade ...; rpm %postun: 0
# remove, 1 upgrade). The home is not removed, not even on purge: it holds
# the agent's identity, its logs and the workloads' data.
set -e
root=${MOLT_PKG_ROOT:-}
case "$1" in
remove | purge | 0) ;;
*) exit 0 ;;
esac
if [ -d "$root/run/systemd/system" ]; then
	systemctl daemon-reload || true
fi
if [ -d "$root/opt/molt" ]; then
	echo "molt-agent: /opt/molt kept (identity, logs, workloads' data); remove it with: rm -rf /opt/molt"
fi
exit 0
