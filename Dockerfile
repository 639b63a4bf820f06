# syntax=docker/dockerfile:1
# The reconciler daemon as a container (Azure Container Instances: deploy/aci/README.md).
# Build: docker build -t reconciler:VERSION .
# Run:   docker run -v /etc/reconciler:/etc/reconciler:ro -p 9464:9464 reconciler:VERSION
# The config must set `metrics: {address: 0.0.0.0}`: the default loopback bind is unreachable from
# outside the container, for Prometheus and for the ACI probes alike.

# --- builder: the wheel, and a virtualenv holding it and its dependencies ---------------------------
FROM python:3.11-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY reconciler ./reconciler
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/reconciler \
 && /opt/reconciler/bin/python -m pip install --only-binary=:all: /wheels/*.whl \
 && /opt/reconciler/bin/python -m pip uninstall --yes pip

# --- runtime: the same Python, the virtualenv, nothing to compile with -----------------------------
FROM python:3.11-slim

LABEL org.opencontainers.image.title="reconciler" \
      org.opencontainers.image.description="Keeps Azure Batch pools and Dask clusters as a YAML file declares them"

# A fixed uid: the ACI secret volume and any bind mount can be made readable by it alone.
RUN groupadd --system --gid 10001 reconciler \
 && useradd --system --uid 10001 --gid reconciler --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin reconciler

COPY --from=builder /opt/reconciler /opt/reconciler
# The annotated example, for `docker run IMAGE validate /opt/reconciler/share/example.yaml`; the real
# config is mounted at /etc/reconciler (a secret volume in ACI).
COPY config/example.yaml /opt/reconciler/share/example.yaml

# Unbuffered: log lines reach `docker logs` / `az container logs` as they are written; stdout is not a
# terminal there, so the daemon writes them as JSON.
ENV PATH="/opt/reconciler/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
WORKDIR /tmp
EXPOSE 9464

# /healthz fails only when a restart would help (a stuck event loop or scheduler); slim has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]

ENTRYPOINT ["reconciler"]
CMD ["run", "--config", "/etc/reconciler/config.yaml"]
