#!/usr/bin/env bash
# Installs what escalefs needs on Debian 12, and only what is missing:
#
#   scripts/install-test-deps.sh          what the test suite needs: fuse3,
#                                         the relay servers it starts on
#                                         127.0.0.1 (pure-ftpd, vsftpd,
#                                         proftpd, Apache with mod_dav, nginx
#                                         with dav_ext, OpenSSH's sshd,
#                                         SeaweedFS), age and rclone
#   scripts/install-test-deps.sh --demo   what make demo needs: fuse3
#
# make test and make demo run it first. When everything is there it returns
# at once without asking apt anything, as any user. When something is
# missing it installs it as root; any other user gets one line naming what
# to install.
#
# pure-ftpd, vsftpd and proftpd-core conflict in Debian ("Provides:
# ftp-server"), so only pure-ftpd is installed; the other two are unpacked
# without their maintainer scripts into $ESCALEFS_TESTBIN
# (default /opt/escalefs-testbin), where the test harness looks for them.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
extra=${ESCALEFS_TESTBIN:-/opt/escalefs-testbin}

demo_pkgs=(fuse3)
test_pkgs=(
	ca-certificates curl openssl fuse3 age rclone lftp
	pure-ftpd apache2 apache2-utils nginx libnginx-mod-http-dav-ext
	openssh-server openssh-client
	libpam-pwdfile libwrap0 libhiredis0.14 libmemcached11 libmemcachedutil2 libpcre2-posix3
)
# SeaweedFS for the s3 backend's tests. `go install …/weed@VERSION` is
# refused (its go.mod has replace directives), so the module is built in a
# writable copy. 6 to 8 minutes on 2 cores with the modules at hand, 9 to
# 10 from nothing; the binary is kept under the name the harness looks for
# (internal/testserver/s3.go: keep the version in step with
# testserver.WeedVersion).
weed_version=v0.0.0-20261109003541-7506e5f91cd6
weed=${XDG_CACHE_HOME:-$HOME/.cache}/escalefs-test/weed-$weed_version

case ${1:-} in
--demo) pkgs=("${demo_pkgs[@]}") want_extra= ;;
"") pkgs=("${test_pkgs[@]}") want_extra=1 ;;
*)
	echo "install-test-deps: unknown argument '$1': expected none (the test suite's needs) or --demo (make demo's)" >&2
	exit 2
	;;
esac

# missing_pkgs prints the packages of "$@" that dpkg does not list as
# installed.
missing_pkgs() {
	local p
	for p in "$@"; do
		if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) != installed ]]; then
			printf '%s ' "$p"
		fi
	done
}

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "install-test-deps: this is not a Debian system (no dpkg-query); install the equivalents of: ${pkgs[*]}" >&2
	exit 1
fi
missing=$(missing_pkgs "${pkgs[@]}")
need_extra=
if [[ -n $want_extra ]] && { [[ ! -x $extra/usr/sbin/vsftpd ]] || [[ ! -x $extra/usr/sbin/proftpd ]]; }; then
	need_extra=1
fi
need_weed=
if [[ -n $want_extra && ! -x $weed ]]; then
	need_weed=1
fi
if [[ -z $missing && -z $need_extra && -z $need_weed ]]; then
	exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
	if [[ -n $missing ]]; then
		echo "install-test-deps: missing Debian packages: ${missing% }; install them as root: sudo apt-get install ${missing% } (or sudo $0 $*)" >&2
		exit 1
	fi
	if [[ -n $need_extra ]]; then
		echo "install-test-deps: vsftpd and proftpd are not unpacked in $extra; run as root: sudo $0" >&2
		exit 1
	fi
fi

if [[ -n $missing || -n $need_extra ]]; then
	# No service may start during installation: the tests start their own.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	echo "install-test-deps: installing ${missing:-vsftpd and proftpd into $extra}"
	apt-get update -q
fi
if [[ -n $missing ]]; then
	# shellcheck disable=SC2086 # one word per package
	apt-get install -y -q --no-install-recommends $missing
fi
if [[ -n $need_extra ]]; then
	work=$(mktemp -d)
	(cd "$work" && apt-get download vsftpd proftpd-core proftpd-mod-crypto)
	mkdir -p "$extra"
	for d in "$work"/*.deb; do dpkg-deb -x "$d" "$extra"; done
	rm -rf "$work"
fi

if [[ -n $need_weed ]]; then
	echo "install-test-deps: building SeaweedFS $weed_version into $weed (about 10 minutes the first time)"
	mod=$(cd / && go mod download -json "github.com/seaweedfs/seaweedfs@$weed_version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [[ -z $mod || ! -f $mod/weed/weed.go ]]; then
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

echo "install-test-deps: installed${missing:+ $missing}${need_extra:+ vsftpd and proftpd in $extra}${need_weed:+ weed in $weed}"
