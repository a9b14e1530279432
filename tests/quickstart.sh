#!/usr/bin/env bash
# tests/quickstart.sh: the README's first Quick start command, exactly as
# written, as on a fresh Debian 12 machine: in a copy of the tree without
# .git (as a tarball, or a machine without git), in a fresh build directory,
# with the test tooling (busted, luacheck) hidden in a private mount
# namespace. It must configure, build and serve: /livez answers 200, the
# test suite is not configured, and --version reads "commit unknown".
# tests/run.sh runs it first (suite "quickstart"); needs root (unshare -m).
#
#   HA_PORT_BASE=26400 tests/quickstart.sh     # listens on BASE+60
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PORT=$((${HA_PORT_BASE:-24700} + 60))
TIMEOUT=${HA_QUICKSTART_TIMEOUT:-900} # seconds for apt-get, the build and the start

die() { echo "quickstart: FAILED: $*" >&2; exit 1; }

# The first ```sh block after "## Quick start": one line, the command.
cmd=$(awk '/^## Quick start/ { q = 1 } q && /^```sh$/ { getline; print; exit }' README.md)
[ -n "$cmd" ] || die "no command found under '## Quick start' in README.md"
case $cmd in *"./build/healthagent") ;; *) die "the first command must end by starting ./build/healthagent: $cmd" ;; esac

work=$(mktemp -d /tmp/ha-quickstart.XXXXXX)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        sleep 0.2
        kill -TERM -- "-$pid" 2>/dev/null || true # a second signal: exit at once
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/src"
if command -v git >/dev/null 2>&1 && [ -e .git ]; then
    git ls-files -z -c -o --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$work/src"
else
    tar --exclude=./.git --exclude='./build*' --exclude=node_modules -cf - . | tar -xf - -C "$work/src"
fi
[ ! -e "$work/src/.git" ] && [ ! -e "$work/src/build" ] || die "the copy has .git or build/"
: > "$work/hidden" # an empty, non-executable file bind-mounted over each tool

echo "quickstart: $cmd"
t0=$(date +%s)
# setsid: the command and the agent it starts form one process group
HEALTHAGENT_LISTEN=127.0.0.1:$PORT setsid unshare -m --propagation private bash -c '
    set -e
    for tool in busted luacheck; do
        if p=$(command -v "$tool"); then mount --bind "$1/hidden" "$p"; fi
    done
    cd "$1/src"
    eval "$2"' quickstart "$work" "$cmd" > "$work/log" 2>&1 &
pid=$!

# GET PATH with bash's /dev/tcp (nothing else may be installed yet): the
# whole answer on stdout
get() {
    exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$1" >&3
    timeout 5 cat <&3
    exec 3<&-
}
livez() {
    case $(get /livez | head -n 1) in "HTTP/1.1 200"*) return 0 ;; *) return 1 ;; esac
}
until livez 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
        tail -n 40 "$work/log" >&2
        die "the command ended before /livez answered 200"
    fi
    if [ $(($(date +%s) - t0)) -gt "$TIMEOUT" ]; then
        tail -n 40 "$work/log" >&2
        die "no /livez 200 within ${TIMEOUT}s"
    fi
    sleep 0.5
done
secs=$(($(date +%s) - t0))

grep -q '^HA_TESTS:BOOL=OFF$' "$work/src/build/CMakeCache.txt" || die "the test suite was configured without busted"
[ ! -e "$work/src/build/CTestTestfile.cmake" ] || die "ctest tests were configured without busted"
version=$("$work/src/build/healthagent" --version)
case $version in *"(commit unknown, built "*) ;; *) die "without .git the version must read 'commit unknown': $version" ;; esac
grep -q "serving .* on 127.0.0.1:$PORT" "$work/log" || die "no start-up line in the log"
get /info | grep -q '"commit":"unknown"' || die "/info must show the commit as unknown: $(get /info | tail -n 1)"
echo "quickstart: /livez 200 after ${secs}s (apt-get, configure, build, start); $version"
