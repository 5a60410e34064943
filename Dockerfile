# The Firstmate application image: `firstmate worker`, `firstmate serve`, `firstmate bot`
# and the rest of the CLI, from the locked dependencies (uv.lock), as a non-root user.
#
#   docker build -t firstmate .
#   docker build --build-arg BASE=firstmate-sandbox-base:bookworm -t firstmate .   # offline
#
# With a registry the base is python:3.12-slim. Offline, pass any local image with
# Python >= 3.11 and ca-certificates, such as the debootstrapped base that
# `firstmate sandbox build` makes (firstmate-sandbox-base:bookworm): pip comes from
# Debian's packages when the base lacks it, and uv and the dependencies from PyPI.
# A base can also carry a TLS-intercepting proxy's CA: pip and uv trust the system store.
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
ARG UV_VERSION=0.13.8
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_NATIVE_TLS=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3 \
    UV_PROJECT_ENVIRONMENT=/opt/firstmate \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
# A C compiler (and Python's headers, when the base lacks them) for the screening core's
# extensions (hatch_build.py); only this stage has them.
RUN set -eu; \
    packages="gcc libc6-dev"; \
    python3 -m pip --version >/dev/null 2>&1 || packages="$packages python3-pip"; \
    python3 -c 'import os, sysconfig; os.stat(sysconfig.get_paths()["include"] + "/Python.h")' \
        2>/dev/null || packages="$packages python3-dev"; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages; \
    rm -rf /var/lib/apt/lists/*; \
    python3 -m pip install "uv==${UV_VERSION}"
WORKDIR /src
# The dependencies first, in their own layer: it is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md hatch_build.py ./
RUN uv sync --locked --no-dev --no-install-project
COPY bot ./bot
COPY orchestrator ./orchestrator
COPY workers ./workers
COPY sandbox ./sandbox
RUN uv sync --locked --no-dev --no-editable

FROM ${BASE}
# uid/gid 10001: no clash with the base's users, nor with the sandbox's uid 1000.
RUN set -eu; \
    groupadd --system --gid 10001 firstmate; \
    useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/firstmate \
        --create-home --shell /usr/sbin/nologin firstmate
COPY --from=build /opt/firstmate /opt/firstmate
ENV PATH=/opt/firstmate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8 \
    FIRSTMATE_DATA_DIR=/var/lib/firstmate
USER firstmate
WORKDIR /var/lib/firstmate
LABEL org.opencontainers.image.title="firstmate"
ENTRYPOINT ["firstmate"]
CMD ["--help"]
