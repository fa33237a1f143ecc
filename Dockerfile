# The pulling-agent image: `make image` (docker build -t pulling-agent:<version> .).
#
# Two stages: the builder makes wheels of the package and of its pinned
# dependencies; the runtime installs them offline, runs as a non-root user, and
# starts the agent as PID 1 with no shell in front of it, so that SIGTERM,
# SIGUSR1 (pause) and SIGUSR2 (resume) reach the agent's own handlers:
#   kubectl exec $POD -- kill -USR1 1
# The chart runs it with a read-only root filesystem and emptyDirs at /tmp,
# /tmp/health and /data.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pulling_agent ./pulling_agent
# The project's wheel and the wheels of its dependencies (versions pinned in pyproject.toml).
RUN python -m pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="pulling-agent" \
      org.opencontainers.image.description="A worker that pulls batches of documents from a queue; pause, resume and stop it safely." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PULLING_AGENT_SOURCE=sqlite:////data/agent.db
# procps provides /bin/kill (for `kubectl exec $POD -- kill -USR1 1`) and ps;
# coreutils (test, stat, date) and dash are already there for the exec probes.
# (The local base of tools/build-image.sh has procps already: no apt-get there.)
RUN test -x /bin/kill || { apt-get update \
    && apt-get install -y --no-install-recommends procps \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin; }
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links /wheels pulling-agent
# A fixed numeric user, so that runAsNonRoot can verify it (the chart uses 10001 too).
RUN groupadd --system --gid 10001 agent \
    && useradd --system --uid 10001 --gid agent --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin agent \
    && install -d -o 10001 -g 10001 /data /tmp/control /tmp/health
USER 10001:10001
WORKDIR /data
EXPOSE 9102
STOPSIGNAL SIGTERM
ENTRYPOINT ["pulling-agent"]
CMD ["run"]
