#!/usr/bin/env bash
# grpc_check.sh: grpc.health.v1 Check calls per second over h2c, the agent's gRPC
# listener side by side with grpc-go's health server (Debian's golang-google-grpc-dev,
# GOMAXPROCS=1), grpc-health-check on @grpc/grpc-js, and the agent's own HTTP/2
# GET /readyz, all measured in this run, servers pinned to CPU 0 and h2load to CPU 1.
# h2load -c50 -m10 -n$N (default 300000) POSTs a 5-byte-framed HealthCheckRequest
# {service: "readiness"} with content-type application/grpc and te: trailers.
# Targets: agent >= 2x grpc-go; agent Check >= 0.8x the agent's h2c /readyz.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl h2load go node
N=${N:-300000}

# the reference: built in a scratch GOPATH-mode build (Debian ships grpc-go as source)
go_out=$BENCH_ROOT/build-bench/grpc_health_server
go_src=$BENCH_DIR/peers/grpc_health_server.go
if [ ! -x "$go_out" ] || [ "$go_src" -nt "$go_out" ]; then
    bench_log "compiling $go_out (grpc-go from /usr/share/gocode; takes a minute or two)"
    mkdir -p "${go_out%/*}"
    GOPATH=/usr/share/gocode GO111MODULE=off GOFLAGS='' GOCACHE=$BENCH_ROOT/build-bench/gocache \
        go build -o "$go_out" "$go_src" || { bench_fail "cannot compile $go_src"; bench_finish; }
fi

# the request: gRPC frame (flag 0, length 11) + HealthCheckRequest{service: "readiness"}
req=$BENCH_TMP/check.bin
printf '\x00\x00\x00\x00\x0b\x0a\x09readiness' >"$req"

# grpc_wait ADDR: polls with `healthagent probe --grpc` until SERVING (10 s at most).
grpc_wait() {
    local _
    for _ in $(seq 1 100); do
        "$HA_BIN" probe --grpc "$1" --service readiness --timeout 1s >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    bench_fail "no SERVING answer from $1 within 10 s"
    bench_finish
}

# grpc_start NAME CMD...: starts a gRPC server pinned like the others. Sets SERVER_PID.
grpc_start() {
    local name=$1
    shift
    (cd "$BENCH_ROOT" && exec "${BENCH_SERVER_CPU[@]}" "$@") >"$BENCH_TMP/$name.log" 2>&1 &
    SERVER_PID=$!
    BENCH_PIDS+=("$SERVER_PID")
}

bench_port; ha_port=$PORT
bench_port; ha_grpc=$PORT
bench_start_agent "$ha_port" --scripts "$BENCH_DIR/fixtures/cached" --listen "127.0.0.1:$ha_port" \
    --grpc-listen "127.0.0.1:$ha_grpc" || bench_finish
bench_port; go_port=$PORT
GOMAXPROCS=1 grpc_start grpc-go "$go_out" "127.0.0.1:$go_port"
GO_PID=$SERVER_PID
bench_port; js_port=$PORT
grpc_start grpc-js node "$BENCH_ROOT/tests/harness/grpc_health_js_server.js" "127.0.0.1:$js_port"
JS_PID=$SERVER_PID
for a in "127.0.0.1:$ha_grpc" "127.0.0.1:$go_port" "127.0.0.1:$js_port"; do grpc_wait "$a"; done
bench_wait_status "http://127.0.0.1:$ha_port/readyz" 200 10 || bench_fail "agent /readyz is not 200"

# grpc_h2load NAME ADDR: sets H2_RPS; fails the run unless every call answered
# grpc-status 0 (h2load counts HTTP codes only: the trailers are checked by a sample).
grpc_h2load() {
    local name=$1 url=http://$2/grpc.health.v1.Health/Check out
    out=$BENCH_TMP/h2load.$name.txt
    "${BENCH_LOAD_CPU[@]}" h2load -c50 -m10 -n"$N" -d "$req" -H 'content-type: application/grpc' \
        -H 'te: trailers' "$url" >"$out" 2>&1
    H2_RPS=$(awk '/^finished in/ { printf "%.2f", $4 }' "$out")
    local reqs
    reqs=$(awk '/^requests:/ { print $2, $8, $10, $12, $14 }' "$out")
    bench_log "h2load $name $url: ${H2_RPS:-?} calls/s; total/succeeded/failed/errored/timeout: $reqs"
    # shellcheck disable=SC2086
    set -- $reqs
    if [ -z "$H2_RPS" ] || [ "${1:-x}" != "${2:-y}" ] || [ "${3:-1}" != 0 ]; then
        bench_fail "h2load against $name: $reqs"
        sed 's/^/  h2load| /' "$out" >&2
        H2_RPS=0
    fi
}

# warm-up, then the measured runs, alternating
for a in "127.0.0.1:$ha_grpc" "127.0.0.1:$go_port" "127.0.0.1:$js_port"; do
    N=20000 grpc_h2load warmup "$a" >/dev/null 2>&1
done
# $ROUNDS (3) rounds of the agent's Check, grpc-go's and the agent's /readyz, the
# first of the three changing every round; grpc-js once (no target)
rounds=${ROUNDS:-3}
ha_runs='' go_runs='' readyz_runs=''
for round in $(seq 1 "$rounds"); do
    for i in 0 1 2; do
        case $(((i + round) % 3)) in
        0) grpc_h2load "agent#$round" "127.0.0.1:$ha_grpc"; ha_runs="$ha_runs $H2_RPS" ;;
        1) grpc_h2load "grpc-go#$round" "127.0.0.1:$go_port"; go_runs="$go_runs $H2_RPS" ;;
        2) N=$N bench_h2load "agent-readyz#$round" "http://127.0.0.1:$ha_port/readyz"; readyz_runs="$readyz_runs $H2_RPS" ;;
        esac
    done
done
grpc_h2load grpc-js "127.0.0.1:$js_port"; js_rps=$H2_RPS

# shellcheck disable=SC2086  # the runs are word lists
ha_rps=$(bench_median $ha_runs) go_rps=$(bench_median $go_runs) readyz_rps=$(bench_median $readyz_runs)
bench_table_begin "gRPC Check calls/s over h2c (medians of $rounds rounds, paired ratios; h2load -c50 -m10 -n$N; servers on CPU 0, grpc-go GOMAXPROCS=1)"
bench_row "Check vs grpc-go" "" "$ha_rps" "$go_rps" ratio_ge 2 "$(bench_paired_ratio "$ha_runs" "$go_runs")"
bench_row "Check vs grpc-js" "" "$ha_rps" "$js_rps" info
bench_row "Check vs own h2c /readyz" "" "$ha_rps" "$readyz_rps" ratio_ge 0.8 "$(bench_paired_ratio "$ha_runs" "$readyz_runs")"
bench_rss "$HA_PID"
bench_row "agent RSS with gRPC" KiB "$RSS_KIB" - info

bench_stop "$HA_PID" agent "$GO_PID" grpc-go "$JS_PID" grpc-js
bench_finish
