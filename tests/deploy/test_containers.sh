#!/bin/sh
# test_containers: stepmark's container images (deploy/container/Dockerfile) built and run with
# podman, with no image registry: the base image is made from Debian's packages by mmdebstrap
# and imported into podman. Then PostgreSQL (the postgres target), stepmarkd (server) and one
# worker (worker) run as containers, CURVE keys made by the image's `stepmark keygen` and handed
# over as podman secrets, the model mounted read-only; the image's CLI creates a course and a
# programming assignment with tests, submits a Python program and waits: the grading must come
# back with the tests run in the worker's bubblewrap sandbox, inside its container, as the
# unprivileged user stepmark.
# The base tarball (and the downloaded .debs) are cached in BUILD_DIR/container-cache, keyed
# by the package lists of the Dockerfile, and podman's storage (layer cache) is kept there too:
# a rerun only rebuilds the layers from the source copy on.
# Usage: test_containers.sh SOURCE_DIR BUILD_DIR   (as root; exit 77 = skipped, reason printed)
# $STEPMARK_TEST_PYTHON: a Python with torch for tests/engine/make_model.py.
set -u
src=$1 build=$2
py=${STEPMARK_TEST_PYTHON:-$src/.venv/bin/python}
t0=$(date +%s)
tmp=$(mktemp -d /tmp/stepmark-containers.XXXXXX)
chmod 755 "$tmp"
. "$src/tests/deploy/container_lib.sh"
tag=smt$$
fail=0
bad() { echo "FAIL: $*"; fail=1; }
step() { echo "== $(($(date +%s) - t0)) s: $*"; }

cleanup() {
  for c in worker stepmarkd db; do pm rm -f -t 5 "$tag-$c" >/dev/null 2>&1; done
  for s in broker worker dbpw; do pm secret rm "$tag-$s" >/dev/null 2>&1; done
  pm image prune -f >/dev/null 2>&1  # the previous run's layers, so the cache does not grow
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
ctr_setup "$src" "$build" "$tmp"

# 1. the base (container_lib.sh)
ctr_base
df=$src/deploy/container/Dockerfile

# 2. the images, from the working tree (.dockerignore leaves build folders out)
for t in server worker postgres; do
  step "podman build --target $t"
  pm build --network host --layers --build-arg BASE_IMAGE="$img" --target "$t" \
    -t "localhost/stepmark-$t:test" -f "$df" "$src" >"$tmp/build-$t.log" 2>&1 ||
    { echo "FAIL: podman build --target $t:"; tail -40 "$tmp/build-$t.log"; exit 1; }
done
for t in server worker; do
  u=$(pm image inspect --format '{{.Config.User}}' "localhost/stepmark-$t:test")
  [ "$u" = stepmark ] || bad "the $t image runs as '$u', not as stepmark"
done
u=$(pm run --rm --entrypoint id localhost/stepmark-worker:test -u)
[ "$u" = 10001 ] || bad "the worker image's user has uid '$u', not 10001"

# 3. keys (the image's own stepmark keygen), a small seeded model, the configuration
step "keys, model, configuration"
mkdir -p "$tmp/keys" "$tmp/etc" && chown 10001:10001 "$tmp/keys" || exit 1
for k in broker worker client; do
  pm run --rm --network none -v "$tmp/keys:/keys" --entrypoint stepmark \
    localhost/stepmark-server:test keygen --out "/keys/$k" >/dev/null 2>"$tmp/keygen.log" ||
    { echo "FAIL: stepmark keygen in the server image: $(cat "$tmp/keygen.log")"; exit 1; }
done
cp "$tmp/keys/broker.public" "$tmp/etc/broker.public"
echo "$(cat "$tmp/keys/worker.public") worker-1" >"$tmp/etc/workers.keys"
echo "$(cat "$tmp/keys/client.public") test-client" >"$tmp/etc/clients.keys"
model=$cache/model
if [ ! -f "$model/model.safetensors" ]; then
  "$py" "$src/tests/engine/make_model.py" --out "$model.part" --tied --seed 1 --hidden 64 \
    --layers 1 --heads 2 --kv-heads 1 --intermediate 128 --vocab 151936 --std 0.3 \
    --eos 151645,151643 --tokenizer "$build/qwen-tokenizer" >"$tmp/model.log" 2>&1 &&
    rm -rf "$model" && mv "$model.part" "$model" ||
    { echo "FAIL: make_model.py: $(tail -5 "$tmp/model.log")"; exit 1; }
fi
# free ports on the host's loopback (host network: no bridge, no DNS plugin needed)
ports=$("$py" -c 'import socket
s=[socket.socket() for _ in range(6)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')
set -- $ports
pg=$1 cport=$2 wport=$3 eport=$4 hport=$5 mport=$6
cat >"$tmp/etc/stepmark.yaml" <<EOF
broker:
  client_endpoint: tcp://127.0.0.1:$cport
  worker_endpoint: tcp://127.0.0.1:$wport
  event_endpoint: tcp://127.0.0.1:$eport
  curve:
    enabled: true
    secret_key_file: /run/secrets/broker_secret
    server_public_key: /etc/stepmark/broker.public
    client_keys_file: /etc/stepmark/clients.keys
    worker_keys_file: /etc/stepmark/workers.keys
http:
  address: 127.0.0.1
  port: $hport
EOF
sed -e "s|tcp://stepmarkd:5556|tcp://127.0.0.1:$wport|" -e "s|metrics_address: 0.0.0.0|metrics_address: 127.0.0.1|" \
  -e "s|metrics_port: 9101|metrics_port: $mport|" -e "s|dtype: bf16|dtype: f32\n  max_new_tokens: 16|" \
  "$src/deploy/container/worker.yaml" >"$tmp/etc/worker.yaml"
chmod -R a+rX "$tmp/etc"
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$tmp/dbpw"
pm secret create "$tag-dbpw" "$tmp/dbpw" >/dev/null &&
  pm secret create "$tag-broker" "$tmp/keys/broker.secret" >/dev/null &&
  pm secret create "$tag-worker" "$tmp/keys/worker.secret" >/dev/null ||
  { echo "FAIL: podman secret create"; exit 1; }

# 4. PostgreSQL, stepmarkd, a worker
step "containers: PostgreSQL, stepmarkd, worker"
pm run -d --name "$tag-db" --network host -e POSTGRES_PASSWORD_FILE=/run/secrets/dbpw \
  --secret "$tag-dbpw,target=dbpw,uid=$(pm run --rm --entrypoint id localhost/stepmark-postgres:test -u)" \
  localhost/stepmark-postgres:test -c port="$pg" -c listen_addresses=127.0.0.1 >/dev/null ||
  { echo "FAIL: the PostgreSQL container did not start"; exit 1; }
# wait_for CONTAINER TEXT: its log shows TEXT (60 s)
wait_for() {
  i=0
  until pm logs "$1" 2>&1 | grep -q "$2"; do
    i=$((i + 1))
    if [ $i -gt 240 ] || [ "$(pm inspect -f '{{.State.Running}}' "$1")" != true ]; then
      bad "$1: no '$2' in its log:"; pm logs "$1" 2>&1 | tail -20; return 1
    fi
    sleep 0.25
  done
}
wait_for "$tag-db" "ready to accept connections" || exit 1
pm run -d --name "$tag-stepmarkd" --network host -v "$tmp/etc:/etc/stepmark:ro" \
  --secret "$tag-broker,target=broker_secret,uid=10001,mode=0400" \
  -e "STEPMARK_DATABASE_URL=postgresql://stepmark:$(cat "$tmp/dbpw")@127.0.0.1:$pg/stepmark" \
  localhost/stepmark-server:test >/dev/null || { echo "FAIL: stepmarkd did not start"; exit 1; }
wait_for "$tag-stepmarkd" "broker listening" || exit 1
pm logs "$tag-stepmarkd" 2>&1 | grep -q "applied [1-9][0-9]* migration" ||
  bad "stepmarkd applied no migrations at start"
# The sandbox in a container: bwrap (not setuid) makes a user namespace as the unprivileged
# user stepmark and mounts a fresh /proc in it. podman's default seccomp profile allows
# unshare(CLONE_NEWUSER) but refuses sethostname() (bwrap --hostname) without CAP_SYS_ADMIN:
# deploy/container/seccomp-worker.json allows it. The kernel allows the /proc mount only where
# the container's /proc has nothing masked or read-only over it: unmask=/proc/*.
pm run -d --name "$tag-worker" --network host -v "$tmp/etc:/etc/stepmark:ro" \
  -v "$model:/models/model:ro" --security-opt 'unmask=/proc/*' \
  --security-opt "seccomp=$src/deploy/container/seccomp-worker.json" \
  --secret "$tag-worker,target=worker_secret,uid=10001,mode=0400" \
  localhost/stepmark-worker:test >/dev/null || { echo "FAIL: the worker did not start"; exit 1; }
wait_for "$tag-stepmarkd" "worker ready" || exit 1

# 5. one submission, graded with its tests run in the worker container's sandbox
step "grading one submission"
sm() {
  pm run --rm --network host -v "$tmp/etc:/etc/stepmark:ro" -v "$tmp/keys:/keys:ro" \
    -v "$src/scripts/demo-data:/data:ro" --entrypoint stepmark localhost/stepmark-server:test \
    "$@" --key-file /keys/client.secret
}
sm course create --code CTR-101 --title "container test" >"$tmp/out" 2>&1 ||
  { echo "FAIL: course create: $(cat "$tmp/out")"; exit 1; }
sm assignment create --course CTR-101 --code sum-lines --file /data/sum-lines.yaml \
  --tests-file /data/sum-lines-tests.json >"$tmp/out" 2>&1 ||
  { echo "FAIL: assignment create: $(cat "$tmp/out")"; exit 1; }
sm submit --course CTR-101 --assignment sum-lines --language python --json /data/code/erin.py \
  >"$tmp/submit" 2>&1 || { echo "FAIL: submit: $(cat "$tmp/submit")"; exit 1; }
id=$(grep -o '"submission_id": *[0-9]*' "$tmp/submit" | grep -o '[0-9]*$')
[ -n "$id" ] || { echo "FAIL: no submission id in: $(cat "$tmp/submit")"; exit 1; }
sm wait "$id" --timeout-s 180 >"$tmp/wait" 2>&1 ||
  { bad "wait: $(cat "$tmp/wait")"; pm logs "$tag-worker" 2>&1 | tail -20; }
sm result "$id" --json >"$tmp/result" 2>&1 || bad "result: $(cat "$tmp/result")"
"$py" "$src/tests/deploy/check_sandbox_result.py" "$tmp/result" ||
  bad "the grading: $(head -c 3000 "$tmp/result")"
pm logs "$tag-worker" 2>&1 | grep -i "sandbox" | head -5
step "done"
[ $fail = 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
