#!/bin/sh
# The real-cluster tests on the current kind or minikube context, in one command (from anywhere):
#   tests/e2e/run.sh [pytest arguments]
# Builds ml-model:v2 and ml-model:v3 into the cluster's image store (each reporting its own model
# version), then runs tests/e2e with MLKUBE_E2E=1. The HPA test also wants metrics-server
# (`minikube addons enable metrics-server`); without it that one test skips and says so.
set -eu
cd "$(dirname "$0")/../.."
context=$(kubectl config current-context)
case "$context" in
  kind-*) target="--kind --kind-cluster ${context#kind-}" ;;
  minikube) target="--minikube" ;;
  *)
    echo "context '$context' is neither kind-* nor minikube: push ml-model:v2 and ml-model:v3 where the" \
      "cluster can pull them, then: MLKUBE_E2E=1 .venv/bin/pytest tests/e2e -v -p no:randomly" >&2
    exit 2
    ;;
esac
for version in v2 v3; do
  # shellcheck disable=SC2086 # $target is two or three words on purpose
  .venv/bin/mlkube image build --tag "ml-model:$version" $target
done
MLKUBE_E2E=1 exec .venv/bin/pytest tests/e2e -v -p no:randomly "$@"
