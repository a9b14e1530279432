#!/usr/bin/env bash
# cached_readyz.sh: throughput and latency of GET /readyz answered from the cached
# response, healthagent next to the reference server, both measured in this run.
# wrk (HTTP/1.1, -t1 -c50, $DUR) and h2load (h2c, -c50 -m10, $N requests), each run
# $ROUNDS (default 4) rounds of one run each side, back to back, the reference first
# in odd rounds and the agent first in even ones. Shown: each side's median, and the
# ratio, which is the median of the per-round ratios (bench_paired_ratio), with the
# reference's own run-to-run spread as the noise floor.
# Target: agent req/s >= 0.95 x reference req/s.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl wrk h2load

bench_start_pair cached
bench_log "agent /readyz: $(curl -s "$ha_url")"
# Warm both up: connection setup paths, page faults, CPU frequency.
"${BENCH_LOAD_CPU[@]}" wrk -t1 -c50 -d1s "$ref_url" >/dev/null 2>&1
"${BENCH_LOAD_CPU[@]}" wrk -t1 -c50 -d1s "$ha_url" >/dev/null 2>&1

rounds=${ROUNDS:-4}
ref_wrk='' ha_wrk='' ref_wrk_p99='' ha_wrk_p99='' ref_h2='' ha_h2=''
# wrk_side SIDE and h2_side SIDE (ref or agent): one run, its figures appended
# to that side's lists
wrk_side() {
    if [ "$1" = ref ]; then
        bench_wrk "ref#$round" "$ref_url"; ref_wrk="$ref_wrk $WRK_RPS" ref_wrk_p99="$ref_wrk_p99 $WRK_P99_MS"
    else
        bench_wrk "agent#$round" "$ha_url"; ha_wrk="$ha_wrk $WRK_RPS" ha_wrk_p99="$ha_wrk_p99 $WRK_P99_MS"
    fi
}
h2_side() {
    if [ "$1" = ref ]; then
        bench_h2load "ref#$round" "$ref_url"; ref_h2="$ref_h2 $H2_RPS"
    else
        bench_h2load "agent#$round" "$ha_url"; ha_h2="$ha_h2 $H2_RPS"
    fi
}
# each round runs both sides back to back, in the order bench_pair_order gives
for round in $(seq 1 "$rounds"); do
    for side in $(bench_pair_order "$round" ref agent); do wrk_side "$side"; done
done
for round in $(seq 1 "$rounds"); do
    for side in $(bench_pair_order "$round" ref agent); do h2_side "$side"; done
done

# shellcheck disable=SC2086  # the runs are word lists
{
    ref_wrk_low=$(printf '%s\n' $ref_wrk | sort -g | head -1) ref_wrk_high=$(printf '%s\n' $ref_wrk | sort -g | tail -1)
    ref_h2_low=$(printf '%s\n' $ref_h2 | sort -g | head -1) ref_h2_high=$(printf '%s\n' $ref_h2 | sort -g | tail -1)
    bench_table_begin "cached /readyz (medians of $rounds rounds, paired ratios; wrk -t1 -c50 -d${DUR:-5s}; h2load -c50 -m10 -n${N:-1000000})"
    bench_row "wrk HTTP/1.1 req/s" "" "$(bench_median $ha_wrk)" "$(bench_median $ref_wrk)" ratio_ge 0.95 \
        "$(bench_paired_ratio "$ha_wrk" "$ref_wrk")"
    bench_row "wrk HTTP/1.1 p99" ms "$(bench_median $ha_wrk_p99)" "$(bench_median $ref_wrk_p99)" info
    bench_row "h2load h2c req/s" "" "$(bench_median $ha_h2)" "$(bench_median $ref_h2)" ratio_ge 0.95 \
        "$(bench_paired_ratio "$ha_h2" "$ref_h2")"
}
echo "noise floor: the reference's own runs differed by up to $(bench_spread "$ref_wrk_high" "$ref_wrk_low") (wrk)" \
    "and $(bench_spread "$ref_h2_high" "$ref_h2_low") (h2load); a ratio within that of 0.95 is not conclusive"

bench_stop "$HA_PID" agent "$REF_PID" ref
bench_finish
