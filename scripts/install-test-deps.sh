#!/usr/bin/env bash
# Installs what the escalefs test suite needs on Debian 12: fuse3, the relay
# servers it starts on 127.0.0.1 (pure-ftpd, vsftpd, proftpd, Apache with
# mod_dav, nginx with dav_ext, OpenSSH's sshd), age and rclone. Run as root.
#
# pure-ftpd, vsftpd and proftpd-core conflict in Debian ("Provides:
# ftp-server"), so only pure-ftpd is installed; the other two are unpacked
# without their maintainer scripts into $ESCALEFS_TESTBIN
# (default /opt/escalefs-testbin), where the test harness looks for them.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
extra=${ESCALEFS_TESTBIN:-/opt/escalefs-testbin}

# No service may start during installation: the tests start their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi

apt-get update -q
apt-get install -y -q --no-install-recommends \
	ca-certificates curl openssl fuse3 age rclone lftp \
	pure-ftpd apache2 apache2-utils nginx libnginx-mod-http-dav-ext \
	openssh-server openssh-client \
	libpam-pwdfile libwrap0 libhiredis0.14 libmemcached11 libmemcachedutil2 libpcre2-posix3

if [ ! -x "$extra/usr/sbin/vsftpd" ] || [ ! -x "$extra/usr/sbin/proftpd" ]; then
	work=$(mktemp -d)
	(cd "$work" && apt-get download vsftpd proftpd-core proftpd-mod-crypto)
	mkdir -p "$extra"
	for d in "$work"/*.deb; do dpkg-deb -x "$d" "$extra"; done
	rm -rf "$work"
fi

# SeaweedFS for the s3 backend's tests. `go install …/weed@VERSION` is
# refused (its go.mod has replace directives), so the module is built in a
# writable copy. 6 to 8 minutes on 2 cores with the modules at hand, 9 to
# 10 from nothing; the binary is kept under the
# name the harness looks for (internal/testserver/s3.go: keep the version
# in step with testserver.WeedVersion).
weed_version=v0.0.0-20261109003541-7506e5f91cd6
weed=${XDG_CACHE_HOME:-$HOME/.cache}/escalefs-test/weed-$weed_version
if [ ! -x "$weed" ]; then
	mod=$(cd / && go mod download -json "github.com/seaweedfs/seaweedfs@$weed_version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ -z "$mod" ] || [ ! -f "$mod/weed/weed.go" ]; then
		echo "install-test-deps: go mod download gave no SeaweedFS source directory (got '$mod')" >&2
		exit 1
	fi
	src=$(mktemp -d)
	cp -r "$mod/." "$src"
	chmod -R u+w "$src"
	mkdir -p "$(dirname "$weed")"
	# About 250 modules (2.1 GB) are downloaded: one failed download is
	# tried again before giving up.
	(cd "$src" && { go build -o "$weed.tmp" ./weed || go build -o "$weed.tmp" ./weed; })
	mv "$weed.tmp" "$weed"
	rm -rf "$src"
fi

echo "test dependencies installed; vsftpd and proftpd are in $extra/usr/sbin, weed is $weed"
