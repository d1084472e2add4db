# syntax=docker/dockerfile:1
# rules-engine image: a web stage installs the workbench's charting library from npm's lockfile
# (rules_engine/workbench/web) and copies the files the pages load; a build stage compiles
# durable-rules (C) and the compiled evaluation core (rules_engine/native, Cython) and builds
# wheels of the project (with those files) and all its dependencies; the runtime stage installs
# those wheels offline, runs as UID 10001 and serves the bundled rulesets from /app/rulesets.
#
#   docker build -t rules-engine .
#   docker run --rm -p 50051:50051 -p 9464:9464 rules-engine

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# vega-lite 6 asks for Node 22 or later (only its dist files are used, but npm ci checks).
ARG NODE_IMAGE=node:22-bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS web

# The same script `make setup` runs: npm ci (no install scripts), then the copy into
# rules_engine/workbench/static/vendor/ beside it.
WORKDIR /src/rules_engine/workbench/web
COPY rules_engine/workbench/web/package.json rules_engine/workbench/web/package-lock.json \
     rules_engine/workbench/web/vendor.sh ./
RUN bash vendor.sh

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# durable-rules ships C sources only, and the compiled core is Cython: gcc and the C library
# headers build both extensions (Cython itself comes from pyproject.toml's build requirements).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# pyproject.toml names README.md as the long description, so it is part of the build; setup.py
# builds the compiled core (rules_engine/native/_core.pyx) into the project's wheel.
COPY pyproject.toml setup.py README.md ./
COPY rules_engine ./rules_engine
# The workbench's vendored charting files, package data of the wheel (pyproject.toml).
COPY --from=web /src/rules_engine/workbench/static/vendor ./rules_engine/workbench/static/vendor
RUN pip wheel --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="rules-engine" \
      org.opencontainers.image.description="gRPC service that evaluates safeguarding rule sets and returns explained escalation flags" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# MALLOC_ARENA_MAX: glibc gives each of the server's threads its own malloc arena, and a long
# run fragments them; two arenas kept a long-running worker's RSS level (RELIABILITY.md).
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    RULES_ENGINE_RULESETS=/app/rulesets \
    RULES_ENGINE_PORT=50051 \
    RULES_ENGINE_METRICS_PORT=9464

# tini (Debian's package) runs as PID 1: it forwards SIGTERM to the server, which drains
# in-flight calls, and reaps worker processes.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 rules-engine \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin rules-engine

# Offline install from the build stage's wheels; no compiler in this image. The bind mount
# keeps the wheels out of the image's layers.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/rules_engine-*.whl

WORKDIR /app
# Root-owned and read-only for the service user: rulesets change by a new image or, on
# Kubernetes, by a ConfigMap mounted over RULES_ENGINE_RULESETS.
COPY rulesets /app/rulesets
COPY docker/healthcheck.py /app/healthcheck.py

USER 10001:10001
EXPOSE 50051 9464 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "/app/healthcheck.py"]

ENTRYPOINT ["tini", "--", "rules-engine"]
CMD ["serve"]
