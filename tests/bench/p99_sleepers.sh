#!/usr/bin/env bash
# p99_sleepers.sh: /readyz tail latency while the engine is busy. The fixture
# (fixtures/sleepers/sleepers.lua) runs 200 liveness checks that sleep 10 ms every
# 200 ms, plus one cached readiness check. wrk --latency (-t1 -c50, $P99_DUR, default
# 10s) on /readyz, agent then reference under the same load generator.
# Target: agent p99 < 2 ms.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl wrk

dur=${P99_DUR:-10s}
bench_port; ref_port=$PORT
bench_start_ref "$ref_port" || bench_finish
bench_port; ha_port=$PORT
bench_start_agent "$ha_port" --scripts "$BENCH_DIR/fixtures/sleepers" --listen "127.0.0.1:$ha_port" || bench_finish

ref_url=http://127.0.0.1:$ref_port/readyz
ha_url=http://127.0.0.1:$ha_port/readyz
if ! bench_wait_status "$ha_url" 200 10; then
    bench_fail "agent /readyz never answered 200 within 10 s (last: $LAST_CODE)"
    bench_finish
fi
# The sleepers should be running by now: liveness turns 200 after their first round.
if bench_wait_status "http://127.0.0.1:$ha_port/livez" 200 5; then
    bench_log "agent /livez is 200: the 200 sleepers are running"
else
    bench_log "note: agent /livez still answers $LAST_CODE after 5 s; the sleepers may not be running"
fi

# Warm both up (connection paths, page faults), then measure.
wrk -t1 -c50 -d1s "$ref_url" >/dev/null 2>&1
wrk -t1 -c50 -d1s "$ha_url" >/dev/null 2>&1
bench_wrk agent "$ha_url" "$dur"
ha_p99=$WRK_P99_MS ha_rps=$WRK_RPS
bench_wrk ref "$ref_url" "$dur"
ref_p99=$WRK_P99_MS ref_rps=$WRK_RPS

bench_table_begin "/readyz under 200 sleeping checks (wrk -t1 -c50 -d$dur --latency)"
bench_row "wrk p99 latency" ms "$ha_p99" "$ref_p99" lt 2
bench_row "wrk req/s" "" "$ha_rps" "$ref_rps" info

bench_stop "$HA_PID" agent "$REF_PID" ref
bench_finish
