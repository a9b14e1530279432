#!/usr/bin/env bash
# groups_aggregate.sh: what one member change costs with a 1,000-member group.
# 1,000 readiness checks with ttl 0 whose every run flips their status; one
# keep-alive curl asks GET /healthz/check-NNNN for each in turn, $CHANGES (3000)
# times: each request runs that check (single flight, answered when its result is
# in), so each request is one member change. Three agents, one after the other:
#   none      no group: the reference column
#   builtin   health.group { match = "^check%-", aggregate = health.aggregate.quorum { ratio = 0.5 } }:
#             evaluated on the front per answer; a change costs the front the
#             group's view hash (its cache key) over its 1,000 members
#   lua       the same group with a Lua aggregate counting UP members: a change
#             runs it on the engine over a 1,000-entry read-only results array
#             (changes that land while it runs are coalesced into one more run)
# CPU of every agent thread (/proc/PID/task/*/schedstat) over the requests, per
# change; the aggregate's own cost is the difference to `none` (information, no
# target: the machine is shared, compare within one run).
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl awk

changes=${CHANGES:-3000}
members=${MEMBERS:-1000}

fixture() { # DIR MODE
    mkdir -p "$1"
    cat >"$1/checks.lua" <<LUA
for i = 1, $members do
  local up = false
  health.check { name = ("check-%04d"):format(i), ttl = 0, run = function() up = not up; return up, "flip" end }
end
LUA
    case $2 in
    builtin) echo 'health.group { name = "all", match = "^check%-", aggregate = health.aggregate.quorum { ratio = 0.5 } }' \
        >"$1/group.lua" ;;
    lua) cat >"$1/group.lua" <<'LUA'
health.group { name = "all", match = "^check%-", aggregate = function(results)
  local up = 0
  for i = 1, #results do
    if results[i].status == "UP" then up = up + 1 end
  end
  return up * 2 >= #results, up .. " of " .. #results .. " up"
end }
LUA
        ;;
    esac
}

# cpu_ns PID: run time of every thread of PID so far, in ns.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'; }

# urls FILE FROM N PORT: a curl config asking for N checks in turn from FROM.
urls() {
    awk -v from="$2" -v n="$3" -v m="$members" -v port="$4" 'BEGIN {
        for (k = 0; k < n; k++) printf "url = \"http://127.0.0.1:%d/healthz/check-%04d\"\noutput = \"/dev/null\"\n", port, (from + k) % m + 1
    }' >"$1"
}

declare -A per
for mode in none builtin lua; do
    dir=$BENCH_TMP/fx-$mode
    fixture "$dir" "$mode"
    bench_port
    port=$PORT
    bench_start_agent "$port" --scripts "$dir" --listen "127.0.0.1:$port" || bench_finish
    bench_wait_status "http://127.0.0.1:$port/readyz/check-0001" 200 30 ||
        bench_wait_status "http://127.0.0.1:$port/readyz/check-0001" 503 30 ||
        { bench_fail "$mode: no answer for check-0001"; bench_finish; }
    urls "$BENCH_TMP/warm.cfg" 0 "$members" "$port"
    "${BENCH_LOAD_CPU[@]}" curl -s -K "$BENCH_TMP/warm.cfg" || bench_fail "$mode: warm-up requests failed"
    urls "$BENCH_TMP/run.cfg" 0 "$changes" "$port"
    sleep 0.5
    c0=$(cpu_ns "$HA_PID")
    t0=$(date +%s%N)
    codes=$("${BENCH_LOAD_CPU[@]}" curl -s -w '%{http_code}\n' -K "$BENCH_TMP/run.cfg" | sort | uniq -c | tr '\n' ' ')
    sleep 0.2 # the last aggregate run
    c1=$(cpu_ns "$HA_PID")
    t1=$(date +%s%N)
    case $codes in *200*503* | *503*200*) ;; *) bench_fail "$mode: the checks did not flip (codes: $codes)" ;; esac
    per[$mode]=$(awk -v a="$c0" -v b="$c1" -v n="$changes" 'BEGIN { printf "%.1f", (b - a) / n / 1000 }')
    if [ "$mode" != none ]; then
        body=$(curl -s "http://127.0.0.1:$port/metrics" | grep "^healthagent_group" | tr "\n" " ")
        bench_log "$mode: $body"
    fi
    bench_log "$mode: $changes changes in $(( (t1 - t0) / 1000000 )) ms, agent CPU ${per[$mode]} us per change (codes: $codes)"
    bench_stop "$HA_PID" agent
done

d_builtin=$(awk -v a="${per[builtin]}" -v b="${per[none]}" 'BEGIN { printf "%.1f", a - b }')
d_lua=$(awk -v a="${per[lua]}" -v b="${per[none]}" 'BEGIN { printf "%.1f", a - b }')
bench_table_begin "aggregation per member change, $members-member group ($changes changes; reference = no group)"
bench_row "CPU/change, built-in quorum" us "${per[builtin]}" "${per[none]}" info
bench_row "CPU/change, Lua aggregate" us "${per[lua]}" "${per[none]}" info
bench_row "built-in's own cost/change" us "$d_builtin" - info
bench_row "Lua aggregate's own/change" us "$d_lua" - info
bench_finish
