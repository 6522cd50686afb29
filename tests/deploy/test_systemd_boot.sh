#!/bin/sh
# test_systemd_boot: the packaged units under a real systemd. The .deb packages of this build
# (cpack) are installed with dpkg into an image made from the mmdebstrap base of
# container_lib.sh (with systemd), which podman boots with systemd as PID 1 and no network
# but its own loopback. stepmarkd.service (its private PostgreSQL cluster in
# /var/lib/stepmark) and stepmark-worker@cpu.service, both enabled as an operator would, must
# come up with all their hardening as the user stepmark; then `stepmark` creates a course and
# a programming assignment with tests, submits a Python program and waits: the grading must
# come back with its tests run in the worker's bubblewrap sandbox.
# Usage: test_systemd_boot.sh SOURCE_DIR BUILD_DIR BINDIR CONFDIR   (as root; 77 = skipped)
# $STEPMARK_TEST_PYTHON: a Python with torch for tests/engine/make_model.py; $CPACK: cpack.
set -u
src=$1 build=$2 bindir=$3 confdir=$4
py=${STEPMARK_TEST_PYTHON:-$src/.venv/bin/python}
t0=$(date +%s)
tmp=$(mktemp -d /tmp/stepmark-sdboot.XXXXXX)
chmod 755 "$tmp"
. "$src/tests/deploy/container_lib.sh"
c=smboot$$
fail=0
bad() { echo "FAIL: $*"; fail=1; }
step() { echo "== $(($(date +%s) - t0)) s: $*"; }
cleanup() {
  pm rm -f -t 5 "$c" >/dev/null 2>&1
  pm rmi "localhost/stepmark-sdboot:$c" >/dev/null 2>&1
  pm image prune -f >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
ctr_setup "$src" "$build" "$tmp"
ctr_base

step "cpack -G DEB"
( cd "$tmp" && "${CPACK:-cpack}" -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/ctx" \
    >"$tmp/cpack.log" 2>&1 ) || { echo "FAIL: cpack: $(tail -20 "$tmp/cpack.log")"; exit 1; }
rm -rf "$tmp/ctx/_CPack_Packages"
ls "$tmp/ctx"/stepmark-*.deb >/dev/null || { echo "FAIL: cpack made no packages"; exit 1; }

# the configuration an operator writes: the example, the worker's model and a small budget
cp "$src/scripts/demo-data/sum-lines.yaml" "$src/scripts/demo-data/sum-lines-tests.json" "$tmp/ctx/"
cp -r "$src/scripts/demo-data/code" "$tmp/ctx/code"
cat >"$tmp/ctx/worker-cpu.yaml" <<EOF
worker:
  model: /srv/stepmark/model
  dtype: f32
  max_new_tokens: 16
EOF
cat >"$tmp/ctx/Containerfile" <<EOF
FROM $img
COPY *.deb /tmp/debs/
# the packages' maintainer scripts run systemd-sysusers, systemd-tmpfiles and systemctl
RUN dpkg -i /tmp/debs/*.deb && rm -rf /tmp/debs
COPY worker-cpu.yaml $confdir/worker-cpu.yaml
COPY sum-lines.yaml sum-lines-tests.json /srv/data/
COPY code /srv/data/code
RUN systemctl enable stepmarkd.service stepmark-worker@cpu.service
EOF
model=$build/container-cache/model
if [ ! -f "$model/model.safetensors" ]; then
  "$py" "$src/tests/engine/make_model.py" --out "$model.part" --tied --seed 1 --hidden 64 \
    --layers 1 --heads 2 --kv-heads 1 --intermediate 128 --vocab 151936 --std 0.3 \
    --eos 151645,151643 --tokenizer "$build/qwen-tokenizer" >"$tmp/model.log" 2>&1 &&
    rm -rf "$model" && mv "$model.part" "$model" ||
    { echo "FAIL: make_model.py: $(tail -5 "$tmp/model.log")"; exit 1; }
fi
step "podman build (dpkg -i the packages)"
pm build --network none -t "localhost/stepmark-sdboot:$c" "$tmp/ctx" >"$tmp/build.log" 2>&1 ||
  { echo "FAIL: podman build: $(tail -30 "$tmp/build.log")"; exit 1; }

# systemd as PID 1. CAP_SYS_ADMIN: systemd sets up the units' mount namespaces
# (ProtectSystem=, PrivateTmp=, ...); without it every unit fails with 226/NAMESPACE.
# unmask=/proc/*: bubblewrap's /proc in the sandbox (as in the worker container). With
# CAP_SYS_ADMIN podman's seccomp profile allows sethostname (bwrap --hostname).
step "podman run --systemd=always"
pm run -d --name "$c" --systemd=always --network none --cap-add SYS_ADMIN \
  --security-opt 'unmask=/proc/*' -v "$model:/srv/stepmark/model:ro" \
  "localhost/stepmark-sdboot:$c" /sbin/init >/dev/null || { echo "FAIL: podman run"; exit 1; }
ex() { pm exec "$c" "$@"; }
i=0
# the broker's log says "worker ready" once the worker has connected
until ex journalctl -u stepmarkd --no-pager 2>/dev/null | grep -q "worker ready"; do
  i=$((i + 1))
  if [ $i -gt 240 ]; then
    bad "the units did not come up:"
    ex systemctl --no-pager status stepmarkd stepmark-worker@cpu 2>&1 | tail -40
    exit 1
  fi
  sleep 0.5
done
for u in stepmarkd stepmark-worker@cpu; do
  [ "$(ex systemctl is-active $u)" = active ] || bad "$u is not active"
  pid=$(ex systemctl show -P MainPID $u)
  user=$(ex ps -o user= -p "$pid")
  [ "$user" = stepmark ] || bad "$u runs as '$user', not as stepmark"
done

step "grading one submission through the units"
sm() { ex "$bindir/stepmark" "$@" --config "$confdir/stepmark.yaml"; }
sm course create --code BOOT-101 --title "systemd boot test" >"$tmp/out" 2>&1 ||
  bad "course create: $(cat "$tmp/out")"
sm assignment create --course BOOT-101 --code sum-lines --file /srv/data/sum-lines.yaml \
  --tests-file /srv/data/sum-lines-tests.json >"$tmp/out" 2>&1 ||
  bad "assignment create: $(cat "$tmp/out")"
sm submit --course BOOT-101 --assignment sum-lines --language python --json /srv/data/code/erin.py \
  >"$tmp/submit" 2>&1 || bad "submit: $(cat "$tmp/submit")"
id=$(grep -o '"submission_id": *[0-9]*' "$tmp/submit" | grep -o '[0-9]*$')
[ -n "$id" ] || { echo "FAIL: no submission id in: $(cat "$tmp/submit")"; exit 1; }
sm wait "$id" --timeout-s 180 >"$tmp/wait" 2>&1 ||
  { bad "wait: $(cat "$tmp/wait")"; ex journalctl -u stepmark-worker@cpu --no-pager | tail -20; }
sm result "$id" --json >"$tmp/result" 2>&1 || bad "result: $(cat "$tmp/result")"
"$py" "$src/tests/deploy/check_sandbox_result.py" "$tmp/result" ||
  bad "the grading: $(head -c 3000 "$tmp/result")"
step "done"
[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
