# syntax=docker/dockerfile:1
# The GreenShard operator image: `docker build -t greenshard:0.1.0 .`
# Runs as UID/GID 65532 (non-root) with a read-only root filesystem in the chart
# (charts/greenshard: /tmp is an emptyDir). Entrypoint `greenshard`, default command `run`.
# tests/unit/test_image.py runs this file's install steps in a fresh virtual environment.

# The base, pinned by its full version (one place for both stages).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- builder: a virtual environment with the locked dependencies and greenshard --------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/greenshard
WORKDIR /src
# Dependencies first (a layer that changes only with the lock): every file checked against the
# sha256 in requirements.lock, wheels only (the slim base has no compiler).
COPY requirements.lock ./
RUN /opt/greenshard/bin/pip install --require-hashes --only-binary=:all: -r requirements.lock
# Then greenshard itself, without dependencies and built with the locked setuptools.
COPY pyproject.toml README.md ./
COPY operator/ ./operator/
RUN /opt/greenshard/bin/pip install --no-deps --no-build-isolation . \
 && /opt/greenshard/bin/greenshard --help > /dev/null

# ---- runtime: the virtual environment on a clean base -----------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="greenshard" \
      org.opencontainers.image.description="Kubernetes operator that places LLM layer shards where they emit the least CO2e" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
COPY --from=builder /opt/greenshard /opt/greenshard
# HOME on the writable /tmp (the root filesystem is read-only in the chart); one BLAS thread so
# numpy's threads do not fight qsim's OpenMP threads; malloc in transparent huge pages, so that
# qsim's new state buffer of every call is not faulted in 4 KiB at a time (solvers/backends.py).
# UID 65532 has no /etc/passwd entry: USER and LOGNAME name it for getpass.getuser() (kopf builds
# its identity from it, and exits with "getpwuid(): uid not found" without them).
ENV PATH=/opt/greenshard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    USER=greenshard \
    LOGNAME=greenshard \
    OPENBLAS_NUM_THREADS=1 \
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["greenshard"]
CMD ["run"]
