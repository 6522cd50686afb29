#!/bin/sh
# test_cli_config: the programs reject a bad configuration with file:line:column and exit 2.
# Usage: test_cli_config.sh STEPMARK_BINARY EXAMPLE_CONFIG
set -u
bin=$1
example=$2
tmp=$(mktemp -d)
fail=0
check() { # name, expected exit, expected text, file content
  printf '%s' "$4" > "$tmp/$1.yaml"
  out=$("$bin" config check "$tmp/$1.yaml" 2>&1); rc=$?
  case "$out" in *"$3"*) ;; *) echo "$1: output \"$out\" lacks \"$3\""; fail=1;; esac
  [ $rc = "$2" ] || { echo "$1: exit $rc, want $2"; fail=1; }
}
check unknown 2 "unknown.yaml:3:3: unknown key \"worker.slotz\"" "worker:
  slots: 2
  slotz: 3
"
check type 2 "type.yaml:2:9: http.port: expected an integer" "http:
  port: eighty
"
check malformed 2 "malformed.yaml:3:" "worker:
  slots: 4
 bad: 1
"
"$bin" config check "$example" >/dev/null 2>&1 || { echo "example rejected"; fail=1; }
out=$("$bin" migrate --config "$tmp/type.yaml" 2>&1); rc=$?
[ $rc = 2 ] || { echo "migrate with bad config: exit $rc, want 2 ($out)"; fail=1; }
rm -rf "$tmp"
[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
