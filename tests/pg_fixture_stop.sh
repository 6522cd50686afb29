#!/bin/sh
# Cleanup of the ctest fixture "pg": stops the throwaway cluster and removes its folder.
# Usage: pg_fixture_stop.sh STEPMARK_BINARY TESTPG_DIR
set -e
"$1" pg stop --data "$2/data" || true
rm -rf "$2"
