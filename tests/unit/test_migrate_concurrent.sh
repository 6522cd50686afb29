#!/bin/sh
# test_migrate_concurrent: two `stepmark migrate` processes started at once on a fresh database
# leave exactly one applied set of migrations; a third run applies nothing.
# Usage: test_migrate_concurrent.sh STEPMARK_BINARY  (STEPMARK_DATABASE_URL = the fixture's db)
set -u
bin=$1
base=$STEPMARK_DATABASE_URL
db="migtest_$$"
psql -qAt -d "$base" -c "CREATE DATABASE $db" || exit 1
url=$(echo "$base" | sed "s/dbname=[a-z_]*/dbname=$db/")
tmp=$(mktemp -d)
fail=0
for round in 1 2 3; do
  STEPMARK_DATABASE_URL="$url" "$bin" migrate >"$tmp/a" 2>&1 & a=$!
  STEPMARK_DATABASE_URL="$url" "$bin" migrate >"$tmp/b" 2>&1 & b=$!
  wait $a || { echo "first migrate failed:"; cat "$tmp/a"; fail=1; }
  wait $b || { echo "second migrate failed:"; cat "$tmp/b"; fail=1; }
  applied=$(cat "$tmp/a" "$tmp/b" | sed -n 's/^applied \([0-9]*\) migration.*/\1/p' | awk '{s+=$1} END {print s+0}')
  rows=$(psql -qAt -d "$url" -c "SELECT count(*) || ' ' || count(DISTINCT version) FROM schema_migrations")
  echo "round $round: applied $applied in total, schema_migrations: $rows"
  expected=$(cat "$tmp/a" | sed -n 's/.*schema version \([0-9]*\).*/\1/p')
  [ "$rows" = "$expected $expected" ] || { echo "want $expected distinct rows"; fail=1; }
  if [ "$round" = 1 ]; then
    [ "$applied" = "$expected" ] || { echo "round 1 should apply each migration once"; fail=1; }
  else
    [ "$applied" = 0 ] || { echo "later rounds should apply nothing"; fail=1; }
  fi
done
tables=$(psql -qAt -d "$url" -c "SELECT count(*) FROM pg_tables WHERE schemaname='public'")
echo "tables: $tables"
[ "$tables" -ge 13 ] || { echo "schema incomplete"; fail=1; }
psql -qAt -d "$base" -c "DROP DATABASE $db" >/dev/null
rm -rf "$tmp"
[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
