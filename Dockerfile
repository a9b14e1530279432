# syntax=docker/dockerfile:1
# healthagent image: Debian 12 slim, built from source in a first stage, run
# as an unprivileged user. The binary finds its Lua library and bundled
# scripts under /usr/share/healthagent, and the client modules it loads on
# first use (health.http, redis, postgres, mysql) under /usr/lib/healthagent.
#
#   docker build -t healthagent:0.1.0 .
#   docker run --rm -p 8080:8080 -v "$PWD/examples/scripts:/etc/healthagent/scripts:ro" \
#       healthagent:0.1.0 --scripts /etc/healthagent/scripts
#
# The tag is the agent's version (healthagent version), the one the
# Kubernetes manifests in examples/kubernetes/ use.
#
# The build needs the project's .git for the commit shown by --version and
# /info (it reads "unknown" without it).

FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config git ca-certificates \
      liblua5.4-dev libuv1-dev libh2o-dev libssl-dev libcurl4-openssl-dev \
      libhiredis-dev libpq-dev libmariadb-dev libnghttp2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# No busted here, so the test suite is not configured: the agent only.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build \
 && strip /out/usr/bin/healthagent /out/usr/lib/healthagent/*.so \
 && /out/usr/bin/healthagent --version

FROM debian:12-slim
LABEL org.opencontainers.image.title="healthagent" org.opencontainers.image.version="0.1.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      liblua5.4-0 libuv1 libh2o0.13 libssl3 libcurl4 libhiredis0.14 libpq5 libmariadb3 \
      libnghttp2-14 ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 healthagent \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --shell /usr/sbin/nologin healthagent \
 && mkdir -p /etc/healthagent/scripts
COPY --from=build /out/usr/ /usr/
USER 65532:65532
# The agent and `healthagent probe` (HEALTHCHECK, exec probes) both read the
# listen address from here: change it here rather than with --listen.
ENV HEALTHAGENT_LISTEN=0.0.0.0:8080
EXPOSE 8080
# tini reaps the grandchildren of health.exec checks and forwards signals;
# SIGTERM starts the agent's drain (readyz 503, shutdown_delay, exit 0).
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/bin/healthagent"]
# Docker's own health state: the readiness probe of this agent (exit 0 or 1).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/bin/healthagent", "probe", "--probe", "readiness", "--timeout", "2s"]
