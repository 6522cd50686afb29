#!/bin/sh
# postgres-entrypoint.sh: the stepmark-postgres image's entry point (Debian's PostgreSQL 15, run
# as `postgres`). On first start with an empty $PGDATA it runs initdb with the superuser
# $POSTGRES_USER (default stepmark) whose password is read from $POSTGRES_PASSWORD_FILE,
# creates the database $POSTGRES_DB (default stepmark), and accepts password (scram-sha-256)
# connections from any address; then it runs the server in the foreground.
set -eu
bindir=/usr/lib/postgresql/15/bin
user=${POSTGRES_USER:-stepmark}
db=${POSTGRES_DB:-stepmark}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=${POSTGRES_PASSWORD_FILE:-}
  [ -n "$pw" ] && [ -r "$pw" ] || {
    echo "postgres-entrypoint: set POSTGRES_PASSWORD_FILE to a readable file" >&2
    exit 2
  }
  "$bindir/initdb" -D "$PGDATA" -U "$user" --pwfile="$pw" --auth-local=scram-sha-256 \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "CREATE DATABASE \"$db\"" | "$bindir/postgres" --single -D "$PGDATA" postgres >/dev/null
  echo "postgres-entrypoint: initialized $PGDATA (user $user, database $db)"
fi
exec "$bindir/postgres" -D "$PGDATA" -c listen_addresses='*' \
  -c unix_socket_directories=/tmp "$@"
