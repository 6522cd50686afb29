#!/usr/bin/env bash
# test_self_contained: nothing in the repository (build files, scripts, tests, docs) refers to
# files outside the clone (the former ../shared/ data folder), and the tokenizer the tests use
# is the one unpacked into this build folder. Usage: test_self_contained.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
top=$(cd "$1" && pwd -P)
build=$(cd "$2" && pwd -P)
fail() { echo "FAIL: $*"; exit 1; }
cd "$top" || exit 1
if [ -d .git ] && command -v git >/dev/null; then
  files=$(git ls-files -co --exclude-standard)
else
  files=$(find . -type f -not -path './build*' -not -path './.venv/*' -not -path './var/*')
fi
hits=$(tr '\n' '\0' <<<"$files" |
  xargs -0 grep -nIE '\.\./shared/|/work/shared|shared/(data|DESIGN)' 2>/dev/null |
  grep -v '^\(\./\)\?tests/unit/test_self_contained.sh:')
[ -z "$hits" ] || fail "references outside the repository:"$'\n'"$hits"
tok=$build/qwen-tokenizer
[ -f "$tok/tokenizer.json" ] && [ -f "$tok/tokenizer_config.json" ] ||
  fail "no unpacked tokenizer in $build/qwen-tokenizer"
echo "PASS"
