#!/usr/bin/env bash
# Install everything the suite needs (build dependencies included, so the
# suite runs on a machine where nothing was installed before), idempotently.
#
#   tests/harness/install.sh
#
# Debian packages come from apt (apt-get update runs only when something is
# missing); the gRPC libraries come from the npm registry into
# tests/harness/node_modules (and, test-only, kubernetes-models and yaml for
# validating the Kubernetes manifests). No system service is started or enabled: the
# harness runs private instances (see servers.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DEBIAN_FRONTEND=noninteractive

# Debian packages the suite uses (clients come with the servers' -tools and
# -client packages; iproute2 gives ss, passwd gives useradd).
PACKAGES=(
    # build: the agent itself (the README's first command installs the same)
    build-essential cmake pkg-config git
    liblua5.4-dev libuv1-dev libh2o-dev libssl-dev
    libcurl4-openssl-dev libhiredis-dev libpq-dev libmariadb-dev libnghttp2-dev
    # test servers and clients
    redis-server redis-tools
    postgresql
    mariadb-server mariadb-client
    nodejs
    openssl curl
    monitoring-plugins-basic
    nghttp2-client wrk
    # the gRPC server's second client (grpcio) and its raw HTTP/2 peer (h2);
    # the bench's grpc-go reference server
    python3-grpcio python3-h2 golang-go golang-google-grpc-dev
    lua-busted lua5.4
    python3  # tests/abuse/abuse.py (standard library only)
    # lint: luacheck over lualib/, scripts/, examples/ (ctest lint/luacheck)
    lua-check
    # the man page test renders docs/healthagent.1
    man-db groff-base
    iproute2 procps passwd util-linux perl-base
    # /metrics and the status page (tests/integration/observe_spec.lua):
    # promtool and a real Prometheus server; headless Chromium for the page
    prometheus chromium
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done
# npm: Debian's "npm" package conflicts with a nodejs that bundles npm (as
# NodeSource's does), so only ask for it when there is no npm command at all.
if ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install.sh: installing: ${missing[*]}"
    # Keep maintainer scripts from starting redis/postgresql/mariadb: a
    # policy-rc.d that answers 101 ("action forbidden") does that. Only
    # install our own when none is there, and remove it afterwards.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"
        own_policy=1
    fi
    cleanup() { if [ "$own_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
    trap cleanup EXIT
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        --no-install-recommends "${missing[@]}"
    cleanup
    trap - EXIT
else
    echo "install.sh: Debian packages already installed"
fi

# The distribution packages may have started their default instances if
# this machine has no policy-rc.d and ours was not in place (for example
# installed by hand earlier). They do not disturb us: the harness uses its
# own ports and data directories.

if [ -f "$HERE/node_modules/@grpc/grpc-js/package.json" ] &&
   [ -f "$HERE/node_modules/@grpc/proto-loader/package.json" ] &&
   [ -f "$HERE/node_modules/kubernetes-models/package.json" ] &&
   [ -f "$HERE/node_modules/yaml/package.json" ] &&
   [ "$HERE/node_modules/.package-lock.json" -nt "$HERE/package.json" ]; then
    echo "install.sh: node modules already installed"
else
    echo "install.sh: npm install in $HERE"
    (cd "$HERE" && npm install --no-audit --no-fund --loglevel=error)
fi

node -e 'require(process.argv[1] + "/node_modules/@grpc/grpc-js"); require(process.argv[1] + "/node_modules/@grpc/proto-loader")' "$HERE"
echo "install.sh: done"
