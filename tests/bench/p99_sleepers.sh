#!/usr/bin/env bash
# p99_sleepers.sh: /readyz tail latency while the engine is busy. The fixture
# (fixtures/sleepers/sleepers.lua) runs 200 liveness checks every 200 ms, each cut
# off by its 100 ms timeout (about 1000 starts and timeouts a second on the engine
# thread), plus one cached readiness check. wrk --latency (-t1 -c50, $P99_DUR, default
# 10s) on /readyz, agent then reference under the same load generator.
# Target: agent p99 < 2 ms.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl wrk

dur=${P99_DUR:-10s}
bench_start_pair sleepers
# The sleepers run once they all left INIT in /livez (they read DOWN: see the fixture).
bench_wait_decided "$ha_port" 50 || true
livez=$LIVEZ
bench_log "agent /livez: $(grep -o '"status":"UP"' <<<"$livez" | wc -l) UP, $(grep -o '"status":"DOWN"' <<<"$livez" | wc -l) DOWN," \
    "$(grep -o '"status":"INIT"' <<<"$livez" | wc -l) INIT (statuses in the body, aggregate included)"
# Warm both up (connection paths, page faults), then measure.
"${BENCH_LOAD_CPU[@]}" wrk -t1 -c50 -d1s "$ref_url" >/dev/null 2>&1
"${BENCH_LOAD_CPU[@]}" wrk -t1 -c50 -d1s "$ha_url" >/dev/null 2>&1
bench_wrk agent "$ha_url" "$dur"
ha_p99=$WRK_P99_MS ha_rps=$WRK_RPS
bench_wrk ref "$ref_url" "$dur"
ref_p99=$WRK_P99_MS ref_rps=$WRK_RPS

bench_table_begin "/readyz under 200 sleeping checks (wrk -t1 -c50 -d$dur --latency)"
bench_row "wrk p99 latency" ms "$ha_p99" "$ref_p99" lt 2
bench_row "wrk req/s" "" "$ha_rps" "$ref_rps" info

bench_stop "$HA_PID" agent "$REF_PID" ref
bench_finish
