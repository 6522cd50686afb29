#!/bin/sh
# test_listen_secrets: the "smaller points" of issue 24 against a real stepmarkd, the stepmark
# CLI and the fixture's PostgreSQL:
#  1. tcp://localhost:PORT endpoints and http.address localhost bind (on 127.0.0.1) and serve;
#  2. a broker secret key file that group or others may read is refused with the fix named;
#  3. the CLI refuses `--key` (a secret on the command line) and takes the client's secret key
#     from --key-file, $STEPMARK_CLIENT_SECRET_KEY_FILE or $STEPMARK_CLIENT_SECRET_KEY, refusing
#     a key file that others may read;
#  4. a database password with spaces and quotes never reaches the output or the log.
# Usage: test_listen_secrets.sh STEPMARKD STEPMARK  (STEPMARK_DATABASE_URL = the fixture's db)
set -u
daemon=$1
cli=$2
base=$STEPMARK_DATABASE_URL
db="lstest_$$"
psql -qAt -d "$base" -c "CREATE DATABASE $db" || exit 1
url=$(echo "$base" | sed "s/dbname=[a-z_]*/dbname=$db/")
tmp=$(mktemp -d)
fail=0
pid=

bad() { echo "FAIL: $*"; fail=1; }

free_ports() {
  python3 -c 'import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'
}
set -- $(free_ports)
p1=$1 p2=$2 p3=$3 p4=$4

# write_config HOST CURVE_BLOCK HTTP_ENABLED
write_config() {
  cat >"$tmp/stepmark.yaml" <<EOF
broker:
  client_endpoint: "tcp://$1:$p1"
  worker_endpoint: "tcp://$1:$p2"
  event_endpoint: "tcp://$1:$p3"
$2
http:
  enabled: $3
  address: $1
  port: $p4
logging:
  level: info
EOF
}

start_daemon() {
  STEPMARK_DATABASE_URL="$url" "$daemon" --config "$tmp/stepmark.yaml" >>"$tmp/daemon.log" 2>&1 &
  pid=$!
}

stop_daemon() {
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  pid=
}

# wait_ready [TEXT]: until stepmarkd logs TEXT (default: the broker listens) (0), or exits or
# 20 s pass (1)
wait_ready() {
  i=0
  while [ $i -lt 80 ]; do
    grep -q "${1:-broker listening}" "$tmp/daemon.log" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.25
    i=$((i + 1))
  done
  return 1
}

# cli ARGS...: the CLI with this test's configuration, output appended to cli.log
cli() {
  timeout 30 "$cli" "$@" --config "$tmp/stepmark.yaml" >>"$tmp/cli.log" 2>&1
}

# z85 FILE: the key in a key file
z85() { grep -v '^#' "$1"; }

# refused ARGS...: the CLI must exit 2; its output is left in $out
refused() {
  out=$(timeout 30 "$cli" "$@" --config "$tmp/stepmark.yaml" 2>&1)
  st=$?
  [ $st = 2 ] || bad "accepted (status $st): $(echo "$*" | cut -c1-60)"
}

# 1. localhost endpoints and HTTP address
write_config localhost "" true
start_daemon
wait_ready "http listening" ||
  bad "stepmarkd did not start on localhost: $(tail -1 "$tmp/daemon.log")"
cli course create --code LH1 --title Loopback --endpoint "tcp://localhost:$p1" ||
  bad "no client got an answer from a broker on tcp://localhost:$p1"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p4/metrics")
[ "$code" != 000 ] || bad "nothing listens for HTTP on localhost:$p4"
grep "cannot bind" "$tmp/daemon.log" && bad "a localhost endpoint could not be bound"
stop_daemon
echo "localhost endpoints: done"

# 2. a broker secret key that others may read
for k in broker lms worker; do
  (cd "$tmp" && "$cli" keygen --out $k >/dev/null 2>&1) || bad "keygen $k failed"
done
printf '%s lms\n' "$(z85 "$tmp/lms.public")" >"$tmp/client_keys"
printf '%s w1\n' "$(z85 "$tmp/worker.public")" >"$tmp/worker_keys"
curve="  curve:
    enabled: true
    secret_key_file: \"$tmp/broker.secret\"
    client_keys_file: \"$tmp/client_keys\"
    worker_keys_file: \"$tmp/worker_keys\""
write_config 127.0.0.1 "$curve" false
chmod 644 "$tmp/broker.secret"
: >"$tmp/daemon.log"
start_daemon
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 60 ]; do sleep 0.25; i=$((i + 1)); done
if kill -0 "$pid" 2>/dev/null; then
  bad "stepmarkd runs with a world-readable secret key file"
  stop_daemon
else
  wait "$pid"
  st=$?
  pid=
  [ $st = 2 ] || bad "stepmarkd exit status $st for a world-readable key file (want 2)"
  grep -q "$tmp/broker.secret.*chmod 600" "$tmp/daemon.log" ||
    bad "the error does not name the file and the fix: $(tail -1 "$tmp/daemon.log")"
fi
echo "broker key file mode: done"

# 3. the client's secret key: never on the command line
chmod 600 "$tmp/broker.secret"
: >"$tmp/daemon.log"
start_daemon
wait_ready || bad "stepmarkd did not start with a private key file: $(tail -1 "$tmp/daemon.log")"
srv="--server-key $tmp/broker.public"
cli course create --code K1 --title Curve $srv --key-file "$tmp/lms.secret" ||
  bad "--key-file did not work: $(tail -2 "$tmp/cli.log")"
for form in "--key $tmp/lms.secret" "--key=$tmp/lms.secret" "--key $(z85 "$tmp/lms.secret")"; do
  refused course create --code K2 --title Curve $srv $form
  echo "$out" | grep -q -- "--key-file" || bad "no hint to use --key-file: $out"
done
export STEPMARK_CLIENT_SECRET_KEY_FILE="$tmp/lms.secret"
cli course create --code K3 --title C $srv || bad "\$STEPMARK_CLIENT_SECRET_KEY_FILE did not work"
unset STEPMARK_CLIENT_SECRET_KEY_FILE
export STEPMARK_CLIENT_SECRET_KEY="$(z85 "$tmp/lms.secret")"
cli course create --code K4 --title C $srv || bad "\$STEPMARK_CLIENT_SECRET_KEY did not work"
unset STEPMARK_CLIENT_SECRET_KEY
export STEPMARK_CLIENT_SECRET_KEY="not-a-key"
refused course create --code K5 --title C $srv
unset STEPMARK_CLIENT_SECRET_KEY
chmod 644 "$tmp/lms.secret"
refused course create --code K6 --title C $srv --key-file "$tmp/lms.secret"
echo "$out" | grep -q "$tmp/lms.secret.*chmod 600" || bad "no chmod hint: $out"
n=$(psql -qAt -d "$url" -c "SELECT count(*) FROM course WHERE code IN ('K1','K3','K4')")
[ "$n" = 3 ] || bad "want courses K1, K3 and K4 created over CURVE, found $n"
n=$(psql -qAt -d "$url" -c "SELECT count(*) FROM course WHERE code IN ('K2','K5','K6')")
[ "$n" = 0 ] || bad "a refused key still created a course"
stop_daemon
echo "client keys: done"

# 4. database passwords with spaces and quotes
for u in "postgresql://bob:SEKRIT w0rd\"x@127.0.0.1:1/db" \
         "host=127.0.0.1 port=1 user=bob password='SEKRIT \\' qu0te' dbname=db" \
         "postgresql://bob:SEKRIT%zz@127.0.0.1:1/db"; do
  STEPMARK_DATABASE_URL="$u" "$cli" migrate >"$tmp/out" 2>&1 && bad "migrate against $u worked"
  STEPMARK_DATABASE_URL="$u" "$daemon" --config "$tmp/stepmark.yaml" >>"$tmp/out" 2>&1 &&
    bad "stepmarkd against $u worked"
  grep -q . "$tmp/out" || bad "no error printed for $u"
  grep -E "SEKRIT|w0rd|qu0te" "$tmp/out" && bad "a password reached the output"
done
echo "database passwords: done"

stop_daemon
psql -qAt -d "$base" -c "DROP DATABASE $db" >/dev/null
if [ $fail != 0 ]; then
  echo "--- daemon log"; tail -20 "$tmp/daemon.log"
  echo "--- cli log"; tail -20 "$tmp/cli.log"
fi
rm -rf "$tmp"
[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
