#!/bin/sh
# test_worker_unit_sandbox: the hardening of stepmark-worker@.service leaves the sandbox
# working. No systemd runs here (not PID 1), so the test reads the unit's [Service] options and
# recreates those that change the file system with unshare(1) and mount(8), as systemd would,
# then runs the real sandbox tests (test_sandbox: bubblewrap, gcc, python3) as an unprivileged
# user with no_new_privs. Options enforced by seccomp or capabilities are checked against what
# bubblewrap needs. An option the test does not know fails it, so that a new one gets checked.
# A control run shows that the emulation catches a harmful option (ProtectKernelTunables).
# Usage: test_worker_unit_sandbox.sh UNIT_FILE TEST_SANDBOX   (as root; exit 77 = skipped)
set -u
unit=$1 sandbox_test=$2
[ "$(id -u)" = 0 ] || { echo "skipped: needs root (unshare -m)"; exit 77; }
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# PrivateTmp and ProtectHome hide a build folder under /tmp, /home or /root: run a copy of the
# test program from a folder the unit's view keeps (an installed worker lives in /usr anyway)
stage=$(mktemp -d /var/lib/stepmark-unit-test-XXXXXX) || { echo "FAIL: mktemp"; exit 1; }
trap 'rm -rf "$stage"' EXIT
cp "$sandbox_test" "$stage/test_sandbox" && chmod 755 "$stage" "$stage/test_sandbox" ||
  { echo "FAIL: cannot stage $sandbox_test"; exit 1; }
sandbox_test=$stage/test_sandbox

opts=$(sed -n '/^\[Service\]/,/^\[/{/^[A-Za-z]*=/p}' "$unit")
mounts=""   # shell commands run in the new mount namespace, before dropping to the user
add() { mounts="$mounts $* ;"; }
ro_all() { # ProtectSystem=strict: every mount read-only except /proc, /sys, /dev
  for m in $(findmnt -rno TARGET | grep -Ev '^/(proc|sys|dev)(/|$)'); do
    printf 'mount -o remount,bind,ro %s 2>/dev/null; ' "$m"
  done
  printf 'true'
}
for kv in $(echo "$opts" | tr ' ' '\001'); do
  kv=$(echo "$kv" | tr '\001' ' ')
  k=${kv%%=*} v=${kv#*=}
  case "$k=$v" in
    ProtectSystem=strict) add "$(ro_all)" ;;
    ProtectSystem=*) bad "ProtectSystem=$v: not emulated" ;;
    ProtectHome=yes) add 'for d in /home /root /run/user; do [ -d $d ] && mount -t tmpfs -o ro,mode=0 none $d; done' ;;
    PrivateTmp=yes) add 'mount -t tmpfs -o mode=1777 none /tmp; mount -t tmpfs -o mode=1777 none /var/tmp' ;;
    ProtectKernelTunables=yes) add 'mount --bind -o ro /proc/sys /proc/sys' ;;
    ProtectKernelLogs=yes) add 'mount --bind /dev/null /proc/kmsg' ;;
    ProtectControlGroups=yes) add 'mount -o remount,bind,ro /sys/fs/cgroup' ;;
    ProtectKernelModules=yes) add 'for d in /usr/lib/modules /lib/modules; do [ -d $d ] && mount -t tmpfs -o ro,mode=0 none $d; done' ;;
    NoNewPrivileges=yes) ;;  # setpriv --no-new-privs below
    RestrictNamespaces=*)
      for ns in user mnt pid net ipc uts cgroup; do # bwrap --unshare-all --unshare-user
        echo " $v " | grep -q " $ns " || bad "RestrictNamespaces= lacks $ns, which bwrap unshares"
      done ;;
    RestrictAddressFamilies=*)
      for af in AF_UNIX AF_NETLINK; do # zmq ipc://; bwrap sets up the sandbox's loopback
        echo " $v " | grep -q " $af " || bad "RestrictAddressFamilies= lacks $af"
      done ;;
    # seccomp/capability options that touch nothing bwrap, gcc or the JVM use:
    # clock setting, realtime scheduling, set-user-id files, personality(), foreign ABIs
    ProtectClock=yes|RestrictRealtime=yes|RestrictSUIDSGID=yes|LockPersonality=yes) ;;
    SystemCallArchitectures=native) ;;
    # not hardening
    Type=*|User=*|Group=*|Environment=*|EnvironmentFile=*|ExecStart=*|KillSignal=*) ;;
    TimeoutStopSec=*|Restart=*|RestartSec=*|StateDirectory*|WorkingDirectory=*) ;;
    LogsDirectory*|ConfigurationDirectory*|UMask=*|Delegate=*) ;;
    *) bad "option $k=$v is not known to this test: emulate or check it here" ;;
  esac
done
echo "$opts" | grep -q '^NoNewPrivileges=yes$' || bad "the worker runs without NoNewPrivileges"
echo "$opts" | grep -q '^Delegate=' || bad "no Delegate=: the sandbox gets no cgroup"

# as_worker MOUNTS CMD...: CMD in a new mount namespace with MOUNTS applied, as nobody, NNP
as_worker() {
  m=$1; shift
  unshare -m sh -c "mount --make-rprivate /; $m cd /; exec setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs \"\$@\"" sh "$@"
}

# control: the emulation detects an option that breaks bubblewrap's /proc
bw="bwrap --unshare-all --unshare-user --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --proc /proc --dev /dev /usr/bin/true"
as_worker "" $bw || bad "control: bwrap fails without any hardening"
if as_worker "mount --bind -o ro /proc/sys /proc/sys;" $bw 2>/dev/null; then
  bad "control: ProtectKernelTunables is not caught by the emulation"
fi

out=$(as_worker "$mounts" "$sandbox_test" 2>&1)
rc=$?
echo "$out" | tail -3
[ $rc = 0 ] || { echo "$out" | grep -E 'FAIL|ERROR|error' | head -20; bad "the sandbox tests fail under the worker unit's hardening"; }

[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
