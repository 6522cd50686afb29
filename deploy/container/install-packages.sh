#!/bin/sh
# install-packages.sh: used by the Dockerfile's stages. Installs the Debian packages named in
# its arguments that are not installed yet (apt-get, no recommends, lists removed afterwards).
# With a base image that already holds them all (the one tests/deploy/test_containers.sh
# makes with mmdebstrap), it does nothing and needs no network.
set -eu
missing=
for p in "$@"; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
apt-get clean
rm -rf /var/lib/apt/lists/*
