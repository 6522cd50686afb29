#!/usr/bin/env bash
# test_build_script: scripts/build on a build folder configured for another checkout (a
# CMakeCache.txt naming other source and build folders) reconfigures it instead of failing,
# turns -Werror on (SM_WERROR), and the build unpacks the vendored Qwen tokenizer
# (third_party/qwen-tokenizer) into the build folder, leaving the source tree unchanged.
# Usage: test_build_script.sh SOURCE_DIR
set -uo pipefail
top=$(cd "$1" && pwd -P)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
dir=$tmp/b
mkdir -p "$dir/CMakeFiles/stale.dir"
cat >"$dir/CMakeCache.txt" <<CACHE
CMAKE_CACHEFILE_DIR:INTERNAL=/nonexistent/other-checkout/build
CMAKE_HOME_DIRECTORY:INTERNAL=/nonexistent/other-checkout
CACHE
before=$(cd "$top/third_party" && find . -type f | sort)

out=$(SM_BUILD_TARGETS=sm_qwen_tokenizer "$top/scripts/build" "$dir" -DSM_CUDA=OFF 2>&1) ||
  fail "scripts/build failed on a folder of another checkout: $out"
echo "$out"
grep -q "configured for the source folder /nonexistent/other-checkout$" <<<"$out" ||
  fail "no message about the other checkout"
grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$top" "$dir/CMakeCache.txt" || fail "cache not for $top"
grep -qx "SM_WERROR:BOOL=ON" "$dir/CMakeCache.txt" || fail "scripts/build did not set SM_WERROR=ON"
[ ! -e "$dir/CMakeFiles/stale.dir" ] || fail "stale CMakeFiles/ kept"

# the unpacked tokenizer: the exact vendored files
(cd "$dir/qwen-tokenizer" && sha256sum -c --quiet) <<SUMS || fail "unpacked tokenizer differs"
aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4  tokenizer.json
5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63  tokenizer_config.json
SUMS
[ "$(cd "$top/third_party" && find . -type f | sort)" = "$before" ] ||
  fail "the build wrote into third_party/"

# a second run on the folder, now ours: no reconfiguration from scratch
out=$(SM_BUILD_TARGETS=sm_qwen_tokenizer "$top/scripts/build" "$dir" 2>&1) || fail "rebuild: $out"
! grep -q "configured for the source folder" <<<"$out" || fail "reconfigured its own folder"
echo "PASS"
