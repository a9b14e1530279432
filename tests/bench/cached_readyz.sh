#!/usr/bin/env bash
# cached_readyz.sh: throughput and latency of GET /readyz answered from the cached
# response, healthagent next to the reference server, both measured in this run.
# wrk (HTTP/1.1, -t1 -c50, $DUR) and h2load (h2c, -c50 -m10, $N requests), each run
# $ROUNDS (default 2) times in the order ref, agent, ref, agent...; the best run of
# each side is reported, with the reference's own run-to-run spread as the noise floor.
# Target: agent req/s >= 0.95 x reference req/s.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl wrk h2load

bench_start_pair cached
bench_log "agent /readyz: $(curl -s "$ha_url")"
# Warm both up: connection setup paths, page faults, CPU frequency.
"${BENCH_LOAD_CPU[@]}" wrk -t1 -c50 -d1s "$ref_url" >/dev/null 2>&1
"${BENCH_LOAD_CPU[@]}" wrk -t1 -c50 -d1s "$ha_url" >/dev/null 2>&1

rounds=${ROUNDS:-2}
ref_wrk_rps=0 ha_wrk_rps=0 ref_wrk_p99=1e9 ha_wrk_p99=1e9 ref_wrk_low=1e12
for round in $(seq 1 "$rounds"); do
    bench_wrk "ref#$round" "$ref_url"
    ref_wrk_rps=$(bench_max "$ref_wrk_rps" "$WRK_RPS"); ref_wrk_p99=$(bench_min "$ref_wrk_p99" "$WRK_P99_MS")
    ref_wrk_low=$(bench_min "$ref_wrk_low" "$WRK_RPS")
    bench_wrk "agent#$round" "$ha_url"
    ha_wrk_rps=$(bench_max "$ha_wrk_rps" "$WRK_RPS"); ha_wrk_p99=$(bench_min "$ha_wrk_p99" "$WRK_P99_MS")
done
ref_h2_rps=0 ha_h2_rps=0 ref_h2_low=1e12
for round in $(seq 1 "$rounds"); do
    bench_h2load "ref#$round" "$ref_url"
    ref_h2_rps=$(bench_max "$ref_h2_rps" "$H2_RPS"); ref_h2_low=$(bench_min "$ref_h2_low" "$H2_RPS")
    bench_h2load "agent#$round" "$ha_url"
    ha_h2_rps=$(bench_max "$ha_h2_rps" "$H2_RPS")
done

bench_table_begin "cached /readyz (best of $rounds; wrk -t1 -c50 -d${DUR:-5s}; h2load -c50 -m10 -n${N:-1000000})"
bench_row "wrk HTTP/1.1 req/s" "" "$ha_wrk_rps" "$ref_wrk_rps" ratio_ge 0.95
bench_row "wrk HTTP/1.1 p99" ms "$ha_wrk_p99" "$ref_wrk_p99" info
bench_row "h2load h2c req/s" "" "$ha_h2_rps" "$ref_h2_rps" ratio_ge 0.95
echo "noise floor: the reference's own runs differed by $(bench_spread "$ref_wrk_rps" "$ref_wrk_low") (wrk)" \
    "and $(bench_spread "$ref_h2_rps" "$ref_h2_low") (h2load); a ratio within that of 0.95 is not conclusive"

bench_stop "$HA_PID" agent "$REF_PID" ref
bench_finish
