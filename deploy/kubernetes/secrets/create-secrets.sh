#!/usr/bin/env bash
# create-secrets.sh: makes the CURVE key pairs of the broker, the workers and one LMS client with
# `stepmark keygen`, the broker's allow-lists, and the Kubernetes Secrets stepmark-database,
# stepmark-curve-broker and stepmark-curve-worker (shapes in secrets.example.yaml).
#
#   create-secrets.sh [--keys-dir DIR] [--namespace NS] [--database-url-file FILE] [--apply]
#
# Keys go to DIR (default ./stepmark-keys, mode 0700); existing keys and lists are kept, so
# after adding a line to DIR/clients.keys a second run updates the Secrets. Without --apply
# it prints the kubectl commands; with it, it runs them (`kubectl create secret ...
# --dry-run=client -o yaml | kubectl apply -f -`, so it also updates). The database URL is read
# from FILE (never from the command line; a copy without its line end is kept in DIR); without
# it the database Secret is left to you. Keep DIR in your backups: it holds the secret keys.
# STEPMARK names the stepmark program (default: stepmark on PATH).
set -euo pipefail

keys=./stepmark-keys
ns=
dburl_file=
apply=0
stepmark=${STEPMARK:-stepmark}
while [ $# -gt 0 ]; do
  case $1 in
    --keys-dir) keys=$2; shift 2 ;;
    --namespace) ns=$2; shift 2 ;;
    --database-url-file) dburl_file=$2; shift 2 ;;
    --apply) apply=1; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "create-secrets.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -n "$dburl_file" ] && [ ! -r "$dburl_file" ]; then
  echo "create-secrets.sh: cannot read $dburl_file" >&2
  exit 2
fi

if ! command -v "$stepmark" >/dev/null; then
  echo "create-secrets.sh: $stepmark not found: install stepmark-cli, or set STEPMARK" >&2
  exit 2
fi
mkdir -p "$keys"
chmod 700 "$keys"
for who in broker worker lms; do
  if [ ! -f "$keys/$who.secret" ]; then
    "$stepmark" keygen --out "$keys/$who" >/dev/null
  fi
done
pub() { grep -v '^[[:space:]]*#' "$1" | grep -m1 .; } # the key line of a .public file
# "Z85KEY name" per line: who may use the client and event endpoints, and the worker endpoint.
# Made once; add lines for more clients yourself (`stepmark keygen --out DIR/NAME`).
if [ ! -f "$keys/clients.keys" ]; then
  printf '%s lms\n' "$(pub "$keys/lms.public")" >"$keys/clients.keys"
fi
if [ ! -f "$keys/workers.keys" ]; then
  printf '%s workers\n' "$(pub "$keys/worker.public")" >"$keys/workers.keys"
fi

kc=(kubectl)
[ -n "$ns" ] && kc+=(--namespace "$ns")
secret() { # NAME --from-file=... : create or update one Secret
  local name=$1
  shift
  if [ "$apply" = 1 ]; then
    "${kc[@]}" create secret generic "$name" "$@" --dry-run=client -o yaml | "${kc[@]}" apply -f -
  else
    echo "${kc[*]} create secret generic $name $*"
  fi
}
secret stepmark-curve-broker "--from-file=broker.secret=$keys/broker.secret" \
  "--from-file=clients.keys=$keys/clients.keys" "--from-file=workers.keys=$keys/workers.keys"
secret stepmark-curve-worker "--from-file=worker.secret=$keys/worker.secret" \
  "--from-file=broker.public=$keys/broker.public"
if [ -n "$dburl_file" ]; then
  # a copy without the line end (kubectl keeps a file's bytes; the URL must arrive as it is)
  (umask 077 && tr -d '\r\n' <"$dburl_file" >"$keys/database.url")
  secret stepmark-database "--from-file=url=$keys/database.url"
else
  echo "# database: put the libpq URL in a file and run create-secrets.sh" \
    "--database-url-file FILE, or ${kc[*]} create secret generic stepmark-database" \
    "--from-file=url=FILE"
fi
echo "# the LMS connects with $keys/lms.secret and the broker's public key" \
  "$(pub "$keys/broker.public")" >&2
