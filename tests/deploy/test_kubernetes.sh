#!/usr/bin/env bash
# test_kubernetes.sh: checks deploy/kubernetes: renders the kustomization, validates every
# manifest offline against the Kubernetes JSON schemas (kubernetes-validate) and the KEDA
# ScaledObject against keda_scaledobject.schema.json, checks the cross-references, and runs
# the pods' commands (migration Job, stepmarkd, a worker, with the ConfigMap's configuration and
# keys from secrets/create-secrets.sh) against the fixture's PostgreSQL (k8s_check.py).
#   test_kubernetes.sh SRC PYTHON STEPMARK STEPMARKD STEPMARK_WORKER MODEL
set -euo pipefail
src=$1 python=$2
if ! "$python" -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null; then
  echo "test_kubernetes: $python lacks kubernetes-validate (run scripts/setup)" >&2
  exit 1
fi
exec "$python" "$src/tests/deploy/k8s_check.py" --src "$src" --stepmark "$3" --stepmarkd "$4" \
  --worker "$5" --model "$6"
