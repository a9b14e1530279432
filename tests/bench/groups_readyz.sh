#!/usr/bin/env bash
# groups_readyz.sh: what 100 groups cost a cached GET /readyz. Two agents on the
# same 10 readiness checks (ttl 1h, interval 10m): one also defines 100 groups
# (3 members each, every one with its own path, a third of them quorum, a third
# Lua aggregates), the other none; the agent without groups is the reference
# column. wrk -t1 -c50 -d$DUR, $ROUNDS (4) rounds of one run each side back to
# back, the order swapped every round; shown are the medians and the median of the
# per-round ratios (the ratio judged), with the reference's own spread as the
# noise floor. Target: req/s >= 0.95 x the agent without groups (expected ~1.0:
# /readyz never looks at a group; only a path no probe owns does).
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl wrk

fixture() { # DIR WITH_GROUPS
    mkdir -p "$1"
    cat >"$1/checks.lua" <<'LUA'
for i = 1, 10 do
  health.check { name = ("check-%02d"):format(i), ttl = "1h", interval = "10m", run = function() return true, "ok" end }
end
LUA
    [ "$2" = 1 ] || return 0
    cat >"$1/groups.lua" <<'LUA'
for i = 1, 100 do
  local k = i % 3
  health.group {
    name = ("group-%03d"):format(i), path = ("/health/group-%03d"):format(i),
    include = { ("check-%02d"):format(i % 10 + 1), ("check-%02d"):format((i + 3) % 10 + 1),
                ("check-%02d"):format((i + 6) % 10 + 1) },
    aggregate = k == 0 and health.aggregate.quorum { min_up = 2 }
             or k == 1 and function(r) return #r > 0, #r .. " members" end
             or nil,
  }
end
LUA
}

fixture "$BENCH_TMP/with" 1
fixture "$BENCH_TMP/without" 0
bench_port; ref_port=$PORT
bench_start_agent "$ref_port" --scripts "$BENCH_TMP/without" --listen "127.0.0.1:$ref_port" || bench_finish
REF_PID=$HA_PID
bench_port; ha_port=$PORT
bench_start_agent "$ha_port" --scripts "$BENCH_TMP/with" --listen "127.0.0.1:$ha_port" || bench_finish
ref_url=http://127.0.0.1:$ref_port/readyz
ha_url=http://127.0.0.1:$ha_port/readyz
for u in "$ref_url" "$ha_url"; do
    bench_wait_status "$u" 200 10 || { bench_fail "$u never answered 200 (last: $LAST_CODE)"; bench_finish; }
done
bench_wait_status "http://127.0.0.1:$ha_port/health/group-042" 200 10 ||
    { bench_fail "group-042 never answered 200 (last: $LAST_CODE)"; bench_finish; }
bench_log "with groups: $(curl -s "http://127.0.0.1:$ha_port/groupz/group-001")"
"${BENCH_LOAD_CPU[@]}" wrk -t1 -c50 -d1s "$ref_url" >/dev/null 2>&1
"${BENCH_LOAD_CPU[@]}" wrk -t1 -c50 -d1s "$ha_url" >/dev/null 2>&1

rounds=${ROUNDS:-4}
ref_runs='' ha_runs=''
# one run each side a round, back to back, in the order bench_pair_order gives
for round in $(seq 1 "$rounds"); do
    for side in $(bench_pair_order "$round" nogroups groups); do
        if [ "$side" = nogroups ]; then
            bench_wrk "nogroups#$round" "$ref_url"; ref_runs="$ref_runs $WRK_RPS"
        else
            bench_wrk "groups#$round" "$ha_url"; ha_runs="$ha_runs $WRK_RPS"
        fi
    done
done
bench_wrk "group-path" "http://127.0.0.1:$ha_port/health/group-100"
ha_grp=$WRK_RPS

# shellcheck disable=SC2086  # the runs are word lists
{
    ref_med=$(bench_median $ref_runs)
    ref_low=$(printf '%s\n' $ref_runs | sort -g | head -1) ref_high=$(printf '%s\n' $ref_runs | sort -g | tail -1)
    bench_table_begin "cached /readyz with 100 groups vs none (medians of $rounds rounds, paired ratio; wrk -t1 -c50 -d${DUR:-5s}; reference = the agent without groups)"
    bench_row "/readyz req/s, 100 groups" "" "$(bench_median $ha_runs)" "$ref_med" ratio_ge 0.95 \
        "$(bench_paired_ratio "$ha_runs" "$ref_runs")"
    bench_row "group path req/s (cached)" "" "$ha_grp" "$ref_med" info
}
echo "noise floor: the reference's own runs differed by up to $(bench_spread "$ref_high" "$ref_low"); a ratio within that of 0.95 is not conclusive"

bench_stop "$HA_PID" agent "$REF_PID" agent
bench_finish
