#!/bin/sh
# Installs what greyspf needs on Debian 12, as root.
#   scripts/install-deps.sh          build and run
#   scripts/install-deps.sh --test   also everything the test suite uses
set -eu

BUILD="build-essential cmake pkg-config libevent-dev libunbound-dev \
liblmdb-dev lmdb-utils libhiredis-dev"
TEST="libcmocka-dev python3 python3-pytest python3-dnspython python3-yaml \
redis-server postfix swaks"

pkgs="$BUILD"
[ "${1:-}" = "--test" ] && pkgs="$pkgs $TEST"

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $pkgs

# The daemon drops root to this user (the example configuration's `user`).
if ! getent passwd greyspf >/dev/null; then
	useradd --system --home-dir /var/lib/greyspf --no-create-home \
		--shell /usr/sbin/nologin greyspf
fi
