# The mlkube image: the notes' Dockerfile (train at build time, serve on port 5000), hardened.
#
#   DOCKER_BUILDKIT=1 docker build --build-arg MODEL_VERSION=v2 -t ml-model:v2 .
#   DOCKER_BUILDKIT=1 docker build --build-arg MODEL_SOURCE=copy --build-arg BUNDLE=models/iris/v3 \
#                                  --build-arg MODEL_VERSION=v3 -t ml-model:v3 .   # ship an existing bundle
#   mlkube image build --tag ml-model:v3 [--bundle models/iris/v3]                  # the same, shorter
#
# Needs BuildKit (Docker's default builder since 23; `DOCKER_BUILDKIT=1` before) or Podman: only the
# stages the target needs are built. No `# syntax=` line: the built-in frontend is enough, so nothing but
# the base image and PyPI's packages is fetched.
#
# Stages: `serve` is the serving venv (dependencies from a hashed lock, then mlkube without its CLI-only
# dependencies); `model-train` trains the bundle in a venv of its own (scikit-learn never reaches the
# runtime) or `model-copy` takes an existing one from the context; `runtime` holds only the serving venv
# and the bundle: no scikit-learn, no pip, no compiler. Dependency layers come before the source, so a
# change under src/ reinstalls only mlkube itself. The runtime writes nothing but /tmp, so it runs with
# a read-only root filesystem. Lines tagged `# recipe:` are run verbatim (paths mapped to a temporary
# folder) by tests/deploy/test_container_recipe.py; tests/image builds and runs this file for real.

# Where the bundle comes from: `train` (default, as the notes' image does) or `copy` (BUNDLE: a folder
# written by `mlkube train`, inside the build context, e.g. models/iris/v3).
ARG MODEL_SOURCE=train

FROM python:3.11.11-slim-bookworm AS serve
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# `strip` (binutils, this stage only): granian's and uvloop's wheels ship debug information (~20 MiB).
# Only theirs: stripping the libraries auditwheel patched (numpy.libs) breaks them.
RUN apt-get update && apt-get install -y --no-install-recommends binutils=2.40-2 \
    && rm -rf /var/lib/apt/lists/*
COPY deploy/requirements-serve.lock deploy/
# The venv gets no pip of its own: the base's pip installs into it (`--python`). Never imported when
# serving, so dropped: numpy's test suites (27 MiB) and onnxruntime's model-conversion tools (10 MiB).
# recipe: serve-install
RUN python -m venv --without-pip /opt/venv && python -m pip --python /opt/venv/bin/python install \
    --no-deps --require-hashes --only-binary=:all: -r deploy/requirements-serve.lock \
    && find /opt/venv/lib/python3*/site-packages/numpy -depth -type d -name tests -exec rm -rf {} + \
    && rm -rf /opt/venv/lib/python3*/site-packages/onnxruntime/transformers \
              /opt/venv/lib/python3*/site-packages/onnxruntime/quantization \
              /opt/venv/lib/python3*/site-packages/onnxruntime/tools \
    && strip --strip-debug /opt/venv/lib/python3*/site-packages/granian/*.so \
                           /opt/venv/lib/python3*/site-packages/uvloop/*.so
COPY pyproject.toml README.md ./
COPY src/ src/
# Bytecode for what the server imports, written once here: the read-only root cannot cache it later.
ARG SERVING_IMPORTS="import numpy, onnxruntime, msgspec, prometheus_client, uvloop, granian.server, \
granian.http, mlkube.server.runner, mlkube.server.app"
# recipe: serve-project
RUN python -m pip --python /opt/venv/bin/python install --no-deps . \
    && env -u PYTHONDONTWRITEBYTECODE /opt/venv/bin/python -c "$SERVING_IMPORTS" \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib/python3*/site-packages/mlkube

FROM python:3.11.11-slim-bookworm AS model-train
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY deploy/requirements-train.lock deploy/
# recipe: train-install
RUN python -m venv --without-pip /opt/train && python -m pip --python /opt/train/bin/python install \
    --no-deps --require-hashes --only-binary=:all: -r deploy/requirements-train.lock
COPY pyproject.toml README.md ./
COPY src/ src/
ARG MODEL_NAME=iris
ARG MODEL_VERSION=v1
# recipe: train
RUN python -m pip --python /opt/train/bin/python install --no-deps . \
    && /opt/train/bin/mlkube train --model-dir /app/models --name "$MODEL_NAME" --version "$MODEL_VERSION"

FROM scratch AS model-copy
ARG MODEL_NAME=iris
ARG MODEL_VERSION=v1
ARG BUNDLE=models/${MODEL_NAME}/${MODEL_VERSION}
COPY ${BUNDLE}/ /app/models/${MODEL_NAME}/${MODEL_VERSION}/

# A stage of this file chosen by MODEL_SOURCE, not an image from a registry: there is no tag to pin.
# checkov:skip=CKV_DOCKER_7: a stage of this file, not a registry image (both bases are pinned)
# hadolint ignore=DL3006
FROM model-${MODEL_SOURCE} AS model

FROM python:3.11.11-slim-bookworm AS runtime
ARG MODEL_NAME=iris
ARG MODEL_VERSION=v1
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="ml-model" \
      org.opencontainers.image.description="mlkube: the notes' Iris model served over HTTP on port 5000" \
      org.opencontainers.image.version="${MODEL_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.11-slim-bookworm" \
      io.mlkube.model.name="${MODEL_NAME}" \
      io.mlkube.model.version="${MODEL_VERSION}"
# Read once by `mlkube serve` (see the README's settings table). The API key is never baked in: it is
# mounted from a Kubernetes Secret at run time (API_KEY_FILE).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=5000 \
    MODEL_DIR=/app/models \
    MODEL_NAME=${MODEL_NAME}
COPY --from=serve /opt/venv /opt/venv
COPY --from=model /app/models /app/models
WORKDIR /app
# Numeric so that Kubernetes' runAsNonRoot can verify it without an /etc/passwd entry.
USER 10001:10001
EXPOSE 5000
# No curl in a slim image: the standard library probes the liveness route.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '5000') + '/health', timeout=2)"]
# Exec form: the server is PID 1 and receives SIGTERM itself, so it can drain (see deploy/kubernetes).
# `python -m mlkube.server` is `mlkube serve` without loading the CLI framework (faster pod start).
ENTRYPOINT ["python", "-m", "mlkube.server"]
