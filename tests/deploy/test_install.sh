#!/bin/sh
# test_install: installs stepmark as an operator would and runs what was installed.
#  1. `cmake --install` into a DESTDIR: the programs, the example configuration, the units, the
#     sysusers.d/tmpfiles.d files, migrations and web files are where the build says;
#  2. `systemd-analyze verify` accepts both units (and an instance of the worker template) with
#     the DESTDIR as root, so their ExecStart= programs must exist where the units say;
#  3. the installed programs run: `stepmark --help`, `stepmark config check` of the installed
#     configuration, `stepmark migrate` on a fresh database of the fixture's PostgreSQL, and
#     stepmarkd with the installed configuration (moved to ipc:// endpoints) answering a request
#     of the installed `stepmark`;
#  4. `cpack -G DEB` builds stepmark-cli, -server and -worker; their runtime libraries are named
#     by dpkg-shlibdeps; extracted with `dpkg-deb -x` into a fresh root they pass 1 to 3 again,
#     and the root's systemd-sysusers/systemd-tmpfiles (what the postinst runs) make the
#     stepmark user and its folders.
# Usage: test_install.sh BUILD_DIR BINDIR UNITDIR SYSUSERSDIR TMPFILESDIR CONFDIR DATADIR
#        (absolute install paths; STEPMARK_DATABASE_URL = the fixture's database; $CMAKE and
#        $CPACK = the build's cmake and cpack)
set -u
build=$1 bindir=$2 unitdir=$3 sysusersdir=$4 tmpfilesdir=$5 confdir=$6 datadir=$7
base=$STEPMARK_DATABASE_URL
tmp=$(mktemp -d /tmp/stepmark-install.XXXXXX)
fail=0
pid=
dbs=

bad() { echo "FAIL: $*"; fail=1; }

cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  for d in $dbs; do psql -qAt -d "$base" -c "DROP DATABASE IF EXISTS $d" >/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# check_files ROOT: every installed file is in place, the units name the installed programs
check_files() {
  r=$1
  for p in stepmark stepmarkd stepmark-worker stepmark-engine; do
    [ -x "$r$bindir/$p" ] || bad "$r$bindir/$p missing"
  done
  for f in "$confdir/stepmark.yaml" "$unitdir/stepmarkd.service" \
           "$unitdir/stepmark-worker@.service" "$sysusersdir/stepmark.conf" \
           "$tmpfilesdir/stepmark.conf" "$datadir/stepmark/schema/001_init.sql" \
           "$datadir/stepmark/web/index.html" "$datadir/doc/stepmark/operator-guide.md"; do
    [ -f "$r$f" ] || bad "$r$f missing"
  done
  grep -q "^ExecStart=$bindir/stepmarkd --config $confdir/stepmark.yaml\$" \
    "$r$unitdir/stepmarkd.service" || bad "stepmarkd.service: wrong ExecStart"
  grep -q "^ExecStart=$bindir/stepmark-worker --config $confdir/worker-%i.yaml\$" \
    "$r$unitdir/stepmark-worker@.service" || bad "stepmark-worker@.service: wrong ExecStart"
  grep -q '^Delegate=' "$r$unitdir/stepmark-worker@.service" || bad "worker: no Delegate="
  grep -q '^u stepmark ' "$r$sysusersdir/stepmark.conf" || bad "sysusers: no stepmark user"
  grep -q "^d $confdir 0750 root stepmark" "$r$tmpfilesdir/stepmark.conf" ||
    bad "tmpfiles: no $confdir"
}

# verify_units ROOT: systemd-analyze verify with ROOT as the root file system; any warning fails
verify_units() {
  r=$1
  mkdir -p "$r/usr/lib/systemd"
  # the units systemd itself ships (sysinit.target, ...), which verify loads as dependencies
  [ -d "$r/usr/lib/systemd/system/sysinit.target" ] ||
    cp -a /usr/lib/systemd/system "$r/usr/lib/systemd/" 2>/dev/null
  for u in "$unitdir/stepmarkd.service" "$unitdir/stepmark-worker@.service" \
           stepmark-worker@cpu.service; do
    out=$(systemd-analyze verify --man=no --root="$r" "$u" 2>&1)
    rc=$?
    if [ $rc != 0 ] || [ -n "$out" ]; then bad "systemd-analyze verify $u (rc $rc): $out"; fi
  done
}

# run_programs ROOT: the installed programs against a fresh database
run_programs() {
  r=$1 tag=$2
  bin=$r$bindir
  "$bin/stepmark" --help >"$tmp/help" 2>&1 && grep -q '^usage: stepmark' "$tmp/help" ||
    bad "$tag: stepmark --help: $(cat "$tmp/help")"
  for p in stepmarkd stepmark-worker; do
    "$bin/$p" --help >"$tmp/help" 2>&1 && grep -q "usage: $p" "$tmp/help" ||
      bad "$tag: $p --help: $(cat "$tmp/help")"
  done
  "$bin/stepmark" config check "$r$confdir/stepmark.yaml" >"$tmp/check" 2>&1 ||
    bad "$tag: the installed configuration is rejected: $(cat "$tmp/check")"

  db="installtest_${tag}_$$"
  psql -qAt -d "$base" -c "CREATE DATABASE $db" || { bad "cannot create $db"; return; }
  dbs="$dbs $db"
  url=$(echo "$base" | sed "s/dbname=[a-z_]*/dbname=$db/")
  STEPMARK_DATABASE_URL="$url" "$bin/stepmark" migrate >"$tmp/migrate" 2>&1 ||
    bad "$tag: stepmark migrate: $(cat "$tmp/migrate")"
  grep -q '^applied [1-9][0-9]* migration' "$tmp/migrate" ||
    bad "$tag: stepmark migrate applied nothing: $(cat "$tmp/migrate")"
  n=$(psql -qAt -d "$url" -c "SELECT count(*) FROM schema_migrations")
  files=$(ls "$r$datadir/stepmark/schema/"*.sql | wc -l)
  [ "$n" = "$files" ] || bad "$tag: $n migrations applied, $files installed"

  # the installed example configuration, moved to ipc:// endpoints in this test's folder
  cfg=$tmp/$tag.yaml
  sed -e "s|client_endpoint: tcp://[0-9.:]*|client_endpoint: ipc://$tmp/$tag-client|" \
      -e "s|worker_endpoint: tcp://[0-9.:]*|worker_endpoint: ipc://$tmp/$tag-worker|" \
      -e "s|event_endpoint: tcp://[0-9.:]*|event_endpoint: ipc://$tmp/$tag-event|" \
      -e "s|broker_endpoint: tcp://[0-9.:]*|broker_endpoint: ipc://$tmp/$tag-worker|" \
      -e "s|^  enabled: true |  enabled: false |" "$r$confdir/stepmark.yaml" >"$cfg"
  grep -q "ipc://$tmp/$tag-client" "$cfg" || bad "$tag: could not move the endpoints"
  STEPMARK_DATABASE_URL="$url" "$bin/stepmarkd" --config "$cfg" >"$tmp/$tag-daemon.log" 2>&1 &
  pid=$!
  i=0
  until grep -q "broker listening" "$tmp/$tag-daemon.log"; do
    i=$((i + 1))
    if [ $i -gt 80 ] || ! kill -0 "$pid" 2>/dev/null; then
      bad "$tag: stepmarkd did not start: $(cat "$tmp/$tag-daemon.log")"
      break
    fi
    sleep 0.25
  done
  timeout 30 "$bin/stepmark" course create --code "INST-$tag" --title "install test" \
    --config "$cfg" >"$tmp/course" 2>&1 || bad "$tag: stepmark course create: $(cat "$tmp/course")"
  c=$(psql -qAt -d "$url" -c "SELECT count(*) FROM course WHERE code = 'INST-$tag'")
  [ "$c" = 1 ] || bad "$tag: the broker did not store the course (count $c)"
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  pid=
}

# 1-3: cmake --install into a DESTDIR
dest=$tmp/destdir
DESTDIR=$dest "${CMAKE:-cmake}" --install "$build" >"$tmp/install.log" 2>&1 ||
  bad "cmake --install: $(tail -20 "$tmp/install.log")"
check_files "$dest"
verify_units "$dest"
run_programs "$dest" destdir

# 4: the .deb packages, extracted into a fresh root
( cd "$tmp" && "${CPACK:-cpack}" -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1 ) ||
  bad "cpack: $(tail -30 "$tmp/cpack.log")"
root=$tmp/debroot
mkdir -p "$root"
for p in cli server worker; do
  deb=$(ls "$tmp/pkg/stepmark-${p}_"*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || { bad "no stepmark-$p package"; continue; }
  dpkg-deb -x "$deb" "$root" || bad "dpkg-deb -x $deb"
  dpkg-deb -f "$deb" Package Depends >"$tmp/fields"
  echo "$(basename "$deb"): $(tr '\n' ' ' <"$tmp/fields")"
  case $p in
    cli) want="libpq5 libzmq5 libyaml-0-2" ;;
    server) want="stepmark-cli libmicrohttpd12 libpq5 libzmq5" ;;
    worker) want="stepmark-cli bubblewrap libopenblas0 libseccomp2 libzmq5" ;;
  esac
  for w in $want; do
    grep -q "Depends:.*$w" "$tmp/fields" || bad "stepmark-$p does not depend on $w"
  done
  dpkg-deb -e "$deb" "$tmp/ctl-$p" || bad "dpkg-deb -e $deb"
  [ -x "$tmp/ctl-$p/postinst" ] || bad "stepmark-$p: no postinst"
done
grep -qx "$confdir/stepmark.yaml" "$tmp/ctl-cli/conffiles" 2>/dev/null ||
  bad "stepmark-cli: $confdir/stepmark.yaml is not a conffile"
grep -q systemd-sysusers "$tmp/ctl-cli/postinst" 2>/dev/null || bad "stepmark-cli: no user"
check_files "$root"
# what stepmark-cli's postinst runs, here against the fresh root: the user, group and folders
systemd-sysusers --root="$root" stepmark.conf >/dev/null 2>&1 || bad "systemd-sysusers failed"
uid=$(grep '^stepmark:' "$root/etc/passwd" 2>/dev/null | cut -d: -f3)
gid=$(grep '^stepmark:' "$root/etc/group" 2>/dev/null | cut -d: -f3)
[ -n "$uid" ] && [ -n "$gid" ] || bad "systemd-sysusers made no stepmark user and group"
systemd-tmpfiles --root="$root" --create stepmark.conf || bad "systemd-tmpfiles failed"
[ "$(stat -c '%u %a' "$root/var/lib/stepmark" 2>/dev/null)" = "$uid 750" ] ||
  bad "/var/lib/stepmark is not the stepmark user's, mode 0750"
[ "$(stat -c '%u %g %a' "$root$confdir" 2>/dev/null)" = "0 $gid 750" ] ||
  bad "$confdir is not root:stepmark, mode 0750"
verify_units "$root"
run_programs "$root" deb

[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
