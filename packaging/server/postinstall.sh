#!/bin/sh
# molt-server postinst (deb: configure [OLD]; rpm %post: 1 install, 2 upgrade).
# Makes the system user molt and /var/lib/molt; enables molt-server, and
# starts it (or, on an upgrade, restarts it: the package owns /usr/bin/molt)
# once /etc/molt/server.yaml exists.
set -e
root=${MOLT_PKG_ROOT:-}
case "$1" in
configure) if [ -n "${2:-}" ]; then upgrade=true; else upgrade=false; fi ;;
1) upgrade=false ;;
2) upgrade=true ;;
*) exit 0 ;;
esac
if ! getent passwd molt >/dev/null; then
	nologin=/usr/sbin/nologin
	[ -x "$nologin" ] || nologin=/sbin/nologin
	useradd --system --user-group --home-dir /var/lib/molt --no-create-home \
		--shell "$nologin" --comment "molt control server" molt
fi
mkdir -p "$root/var/lib/molt" "$root/etc/molt"
chown molt:molt "$root/var/lib/molt"
chmod 0750 "$root/var/lib/molt"
if [ -d "$root/run/systemd/system" ]; then
	systemctl daemon-reload
	systemctl enable molt-server.service
	if [ -f "$root/etc/molt/server.yaml" ]; then
		if $upgrade; then
			systemctl try-restart molt-server.service
		else
			systemctl start molt-server.service
		fi
	else
		echo "molt-server: enabled; write /etc/molt/server.yaml (example: /usr/share/doc/molt-server/server.yaml.example), then: systemctl start molt-server"
	fi
fi
exit 0
