#!/bin/sh
# SPDX-License-Identifier: MIT
# install-deps.sh - install the Debian 12 packages the project builds, runs and
# tests with.  Idempotent: packages already present are not touched, and apt is
# not called at all when nothing is missing.  Shared by `make run`, `make test`
# and .ci/run.  Needs root (or sudo) only when something is missing.
set -eu

PKGS="build-essential pkg-config clang libclang-rt-14-dev
libmicrohttpd-dev libjansson-dev libpq-dev libcurl4-openssl-dev libssl-dev
libopendkim-dev opendkim-tools libleveldb-dev libevent-dev libgmime-3.0-dev
libsodium-dev libxml2-dev libcmocka-dev
postgresql nginx libnginx-mod-mail libjs-bootstrap5 openssl ca-certificates
python3 python3-pytest python3-dkim python3-nacl python3-aiosmtpd python3-requests
swaks libnet-ssleay-perl postfix mlmmj wrk curl procps chromium dnsmasq-base
libpython3.11-testsuite python3-flufl.bounce"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = "installed" ] || missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi
echo "install-deps: installing:$missing"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# postfix asks questions unless preseeded; "Local only" keeps it from relaying.
echo "postfix postfix/main_mailer_type select Local only" | $SUDO debconf-set-selections
echo "postfix postfix/mailname string localhost" | $SUDO debconf-set-selections

# Keep apt from starting the distro's own postgresql/nginx/postfix: the stack
# runs private instances on its own ports.  Only while we install.
rc=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod 755 /usr/sbin/policy-rc.d
	rc=created
fi
cleanup() { [ "$rc" = created ] && $SUDO rm -f /usr/sbin/policy-rc.d; return 0; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q || true
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
echo "install-deps: done"
