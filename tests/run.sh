#!/usr/bin/env bash
# tests/run.sh: the whole test suite, as CI runs it (the README's second
# Quick start command). First the README's first command exactly as written,
# as on a fresh machine (tests/quickstart.sh: a copy without .git, busted
# hidden; about a minute, most of it the build); then installs what the
# tests need, builds and runs ctest three times:
#   build/       normal build: C tests, unit and integration specs
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer: the same suite
#   build-tsan/  ThreadSanitizer: the specs that cross the engine/front thread boundary
# Set HA_SUITES="normal" (or "quickstart normal asan") to run fewer. Exits
# non-zero on any failure; prints ctest's summary lines.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SUITES=${HA_SUITES:-"quickstart normal asan tsan"}
JOBS=${HA_JOBS:-2}

status=0
case " $SUITES " in
*" quickstart "*)
    echo "=== quickstart: the README's first command on a fresh tree"
    HA_PORT_BASE=24700 bash tests/quickstart.sh || { echo "=== quickstart: FAILED"; status=1; }
    ;;
esac

bash tests/harness/install.sh

build() { # dir, extra cmake args...
    local dir=$1; shift
    cmake -S "$ROOT" -B "$ROOT/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHA_TESTS=ON "$@" > "$ROOT/$dir.cmake.log" 2>&1 ||
        { cat "$ROOT/$dir.cmake.log"; return 1; }
    cmake --build "$ROOT/$dir" -j"$JOBS"
}

run() { # name, dir, ctest args...
    local name=$1 dir=$2; shift 2
    echo "=== $name: ctest in $dir"
    # the harness fixture starts per ctest run; distinct port bases keep runs apart
    if ! (cd "$ROOT/$dir" && ctest --output-on-failure --timeout 900 "$@"); then
        echo "=== $name: FAILED"
        status=1
    fi
}

for suite in $SUITES; do
    case $suite in
    normal)
        build build
        HA_PORT_BASE=24700 run normal build
        ;;
    asan)
        build build-asan -DHA_SANITIZE=address
        # leaks are bugs; the Lua C modules busted loads are not ours to fix
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp \
        HA_PORT_BASE=24740 run asan build-asan
        ;;
    tsan)
        build build-tsan -DHA_SANITIZE=thread
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/tests/tsan.supp" \
        HA_PORT_BASE=24780 run tsan build-tsan -L 'integration|fuzz'
        ;;
    quickstart) ;; # above, before anything else is installed
    *) echo "unknown suite $suite"; exit 2 ;;
    esac
done
exit $status
