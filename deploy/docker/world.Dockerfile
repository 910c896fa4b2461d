# syntax=docker/dockerfile:1
#
# The data image: `probelog world build` (the tools beside the served package, with torch) for
# the chart's data Job, which fills the data volume the services read (the CLIP checkpoint and
# config, the probe set, the background names; see the chart's README, "Data"). Build from the
# repository root:
#   docker build -f deploy/docker/world.Dockerfile -t probelog-world:0.1.0 .

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README* ./
COPY services/ services/
COPY tools/ tools/
RUN /opt/venv/bin/pip install --no-cache-dir ".[clip]" ./tools \
    && /opt/venv/bin/pip uninstall --yes pip setuptools wheel

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="probelog-world" \
      org.opencontainers.image.description="Builds the ProbeLog world: CLIP checkpoint, probe set, background names"
RUN if python3 -c "import pip" 2>/dev/null; then python3 -m pip uninstall --yes pip setuptools wheel; fi \
    && groupadd --system --gid 10001 probelog \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin probelog
WORKDIR /tmp
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache
USER 10001:10001
ENTRYPOINT ["probelog"]
CMD ["world", "build", "--scale", "tiny", "--out", "/data", "--no-progress"]
