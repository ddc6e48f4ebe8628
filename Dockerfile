# syntax=docker/dockerfile:1
# The mlkube image: the notes' Dockerfile (train at build time, serve on port 5000), hardened.
#
#   docker build --build-arg MODEL_VERSION=v2 -t ml-model:v2 .
#   docker build --build-arg MODEL_SOURCE=copy --build-context bundle=models/iris/v3 \
#                --build-arg MODEL_VERSION=v3 -t ml-model:v3 .        # ship an existing bundle instead
#
# Stages: `build` installs the package twice (with the training extras, and serving-only); `model-train`
# or `model-copy` makes the bundle; `runtime` holds only the serving install and the bundle: no
# scikit-learn, no compiler, no pip cache. The runtime writes nothing but /tmp, so it runs with a
# read-only root filesystem. Lines tagged `# recipe:` are run verbatim (paths mapped to a temporary
# folder) by tests/deploy/test_container_recipe.py, so the test cannot drift from this file.

# Where the bundle comes from: `train` (default, as the notes' image does) or `copy` (needs the named
# build context `bundle`, a folder written by `mlkube train`).
ARG MODEL_SOURCE=train

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Least-changing first (the notes' layer-caching tip): project metadata, then the source.
COPY pyproject.toml README.md ./
COPY src/ src/
# recipe: train-install
RUN python -m venv /opt/train && /opt/train/bin/pip install --no-cache-dir ".[train]"
# recipe: serve-install
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir .

FROM build AS model-train
ARG MODEL_NAME=iris
ARG MODEL_VERSION=v1
# recipe: train
RUN /opt/train/bin/mlkube train --model-dir /app/models --name "$MODEL_NAME" --version "$MODEL_VERSION"

FROM scratch AS model-copy
ARG MODEL_NAME=iris
ARG MODEL_VERSION=v1
# `bundle` is a named build context given on the command line, not a stage: hadolint cannot know it.
# hadolint ignore=DL3022
COPY --from=bundle . /app/models/${MODEL_NAME}/${MODEL_VERSION}/

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
COPY --from=build /opt/venv /opt/venv
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
