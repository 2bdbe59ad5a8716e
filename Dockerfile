# syntax=docker/dockerfile:1
# One image for every tend process: `tend migrate`, `tend ingest`, `tend scorer`, `tend alerts`,
# `tend web`.
#   docker build -t tend .        (deploy/compose.yaml builds it for you)

# -- build: the project and its dependencies in a virtual environment -------------------------
FROM python:3.12-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/tend
WORKDIR /src
# Exact versions of every dependency from the lock (bash scripts/lock writes it), in a layer of
# their own that a code change does not rebuild; then the project itself, adding nothing.
COPY requirements.lock ./
RUN /opt/tend/bin/pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY migrations ./migrations
RUN /opt/tend/bin/pip install --no-cache-dir --no-deps . \
    && /opt/tend/bin/pip check

# -- runtime: the virtual environment only, as an unprivileged user ---------------------------
FROM python:3.12-slim
RUN groupadd --system --gid 10001 tend \
    && useradd --system --uid 10001 --gid tend --home-dir /app --shell /usr/sbin/nologin tend
COPY --from=build /opt/tend /opt/tend
COPY deploy/tend.yaml /etc/tend/tend.yaml
ENV PATH=/opt/tend/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TEND_CONFIG=/etc/tend/tend.yaml \
    HEALTHCHECK_PORT=8000
WORKDIR /app
USER 10001:10001
EXPOSE 8000 8001 8002 8003
# Liveness of whichever service runs here; set HEALTHCHECK_PORT to its port (8001 scorer,
# 8002 alerts, 8003 web). `tend migrate` is one-shot and has no health to check.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['HEALTHCHECK_PORT'], timeout=2)"]
ENTRYPOINT ["tend"]
CMD ["ingest", "--host", "0.0.0.0", "--port", "8000"]
