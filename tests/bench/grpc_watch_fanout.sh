#!/usr/bin/env bash
# grpc_watch_fanout.sh: 10,000 grpc.health.v1 Watch streams over 100 connections
# (@grpc/grpc-js, tests/harness/grpc_watch_flood.js, on CPU 1; the agent on CPU 0):
# the agent's RSS per Watch stream, and the time from a status change (POST
# /-/drain) to the last of the 10,000 watchers receiving NOT_SERVING. The client's
# own processing of 10,000 messages is part of the figure.
# Targets: RSS per stream < 2 KiB; fan-out < 2 s.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl node
CONNS=${CONNS:-100}
PER=${PER:-100}

bench_port; ha_port=$PORT
bench_port; ha_grpc=$PORT
printf 'bench-token-0123456789\n' >"$BENCH_TMP/token"
bench_start_agent "$ha_port" --scripts "$BENCH_DIR/fixtures/cached" --listen "127.0.0.1:$ha_port" \
    --grpc-listen "127.0.0.1:$ha_grpc" --token-file "$BENCH_TMP/token" || bench_finish
bench_wait_status "http://127.0.0.1:$ha_port/readyz" 200 10 || bench_fail "agent /readyz is not 200"
out=$BENCH_TMP/flood.txt
"${BENCH_LOAD_CPU[@]}" node "$BENCH_ROOT/tests/harness/grpc_watch_flood.js" "127.0.0.1:$ha_grpc" "$CONNS" "$PER" \
    readiness "$HA_PID" "http://127.0.0.1:$ha_port" bench-token-0123456789 >"$out" 2>&1
sed 's/^/# /' "$out" >&2
per=$(awk -F= '$1 == "bytes_per_stream" { print $2 }' "$out")
fan=$(awk -F= '$1 == "fanout_ms" { print $2 }' "$out")
streams=$(awk -F= '$1 == "streams" { print $2 }' "$out")
if [ -z "$per" ] || [ -z "$fan" ]; then
    bench_fail "the Watch flood did not complete"
    per=- fan=-
fi
bench_table_begin "gRPC Watch: ${streams:-?} streams over $CONNS connections"
bench_row "RSS per Watch stream" bytes "$per" - le 2048
bench_row "drain seen by all watchers" ms "$fan" - lt 2000
bench_stop "$HA_PID" agent
bench_finish
