# container_lib.sh: sourced by test_containers.sh and test_systemd_boot.sh (POSIX sh). Runs
# rootful podman with storage and configuration of its own, and makes the Debian 12 base image
# with mmdebstrap (no image registry needed), cached in BUILD_DIR/container-cache.
# ctr_setup SOURCE_DIR BUILD_DIR TMP: checks what is needed (exit 77 with the reason where
#   podman cannot run), sets $cache, $run and $CONTAINERS_CONF; then `pm ARGS` is podman.
# ctr_base: the base image, made once per package list; sets $img (its name).

skip() { echo "skipped: $*"; exit 77; }

ctr_setup() {
  ctr_src=$1 ctr_build=$2 ctr_tmp=$3
  [ "$(id -u)" = 0 ] || skip "needs root (rootful podman, mmdebstrap in root mode)"
  for p in podman mmdebstrap runc; do
    command -v $p >/dev/null || skip "$p is not installed (scripts/setup installs it)"
  done
  [ -d /sys/fs/cgroup ] || skip "no /sys/fs/cgroup: podman cannot run containers here"
  cache=$ctr_build/container-cache
  mkdir -p "$cache/debs" || exit 1
  cache=$(cd "$cache" && pwd -P)   # podman's database records the real path
  # cgroupfs (no systemd on the host), runc (crun refuses hybrid cgroup v1/v2 hosts), events
  # in a file, and rlimits this process may set: rootful podman asks for 1048576 files and
  # 4194304 processes, which a root without CAP_SYS_RESOURCE (some CI containers and VMs)
  # cannot grant; runc failed here to set more than 32768 processes under a higher limit
  run=/run/stepmark-test-containers-$(echo "$cache" | md5sum | cut -c1-8)
  nofile=$(awk '/^Max open files/ {print $5}' /proc/self/limits)
  nproc=$(awk '/^Max processes/ {print $4}' /proc/self/limits)
  [ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ] && nofile=1048576
  [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
  cat >"$ctr_tmp/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
  export CONTAINERS_CONF="$ctr_tmp/containers.conf"
  pm info >"$ctr_tmp/podman-info" 2>&1 ||
    { echo "FAIL: podman info: $(tail -3 "$ctr_tmp/podman-info")"; exit 1; }
}

pm() { podman --root "$cache/storage" --runroot "$run" --storage-driver overlay "$@"; }

# Every package the Dockerfile's stages install (so that the image builds need no network),
# and systemd for test_systemd_boot.sh. One mmdebstrap at a time (flock): both tests share it.
ctr_base() {
  df=$ctr_src/deploy/container/Dockerfile
  pkgs=$(sed -n 's/^ARG [A-Z]*_PACKAGES="\(.*\)"$/\1/p' "$df" | tr ' ' '\n' |
    cat - "$ctr_src/tests/deploy/container-base-extra.txt" | grep -v '^#' | sort -u | tr '\n' ' ')
  [ -n "$pkgs" ] || { echo "FAIL: no package lists in $df"; exit 1; }
  key=$(echo "bookworm minbase $pkgs" | sha256sum | cut -c1-16)
  base=$cache/base-$key.tar
  img=localhost/stepmark-base:$key
  exec 9>"$cache/lock"
  flock 9
  if [ ! -s "$base" ]; then
    echo "== mmdebstrap: Debian 12 (minbase) with $pkgs"
    timeout 5 getent hosts deb.debian.org >/dev/null ||
      skip "no cached base and deb.debian.org cannot be resolved: no base image can be made"
    rm -f "$cache"/base-*.tar
    # eatmydata: dpkg without fsync (minutes less on a slow disk), where the host has it
    fast=
    hooks=/usr/share/mmdebstrap/hooks/eatmydata
    command -v eatmydata >/dev/null && [ -d $hooks ] && fast=--hook-dir=$hooks
    mmdebstrap --variant=minbase --format=tar $fast --include="$(echo $pkgs | tr ' ' ',')" \
      --aptopt='Acquire::Languages "none"' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --skip=download/empty --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
      --setup-hook="sync-in $cache/debs /var/cache/apt/archives/" \
      --customize-hook="sync-out /var/cache/apt/archives $cache/debs" \
      bookworm "$base.part" http://deb.debian.org/debian >"$ctr_tmp/mmdebstrap.log" 2>&1 ||
      { echo "FAIL: mmdebstrap:"; tail -30 "$ctr_tmp/mmdebstrap.log"; rm -f "$base.part"; exit 1; }
    mv "$base.part" "$base"
  fi
  if ! pm image exists "$img"; then
    echo "== podman import $base"
    pm import "$base" "$img" >"$ctr_tmp/import.log" 2>&1 ||
      { echo "FAIL: podman import: $(cat "$ctr_tmp/import.log")"; exit 1; }
  fi
  flock -u 9
}
