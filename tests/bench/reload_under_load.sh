#!/usr/bin/env bash
# reload_under_load.sh: RELOADS (default 200) consecutive hot reloads while wrk
# keeps /readyz busy. Each round rewrites the scripts (a comment changes, so the
# content hash does; the checks do not), asks for POST /-/reload and waits until
# /-/status shows the new generation. Reports wrk's socket errors and non-2xx
# answers (targets: 0 and 0, every check stays UP so any 503 is a wrong answer),
# reloads per second, and VmRSS before and after (target: back within 2 MiB).
#   RELOADS=200 CHECKS=20 WRK_CONNS=16 tests/bench/reload_under_load.sh
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl wrk

RELOADS=${RELOADS:-200}
CHECKS=${CHECKS:-20}
WRK_CONNS=${WRK_CONNS:-16}
scripts=$BENCH_TMP/scripts
mkdir -p "$scripts"

# write_scripts N: CHECKS checks, plus a comment naming the round.
write_scripts() {
    local i tmp=$scripts/.a.lua.tmp
    {
        for i in $(seq 1 "$CHECKS"); do
            printf 'health.check { name = "c%d", probes = { "readiness", "liveness" }, ttl = "1s", run = function() return true end }\n' "$i"
        done
        printf -- '-- round %s\n' "$1"
    } >"$tmp"
    mv "$tmp" "$scripts/a.lua"
}

# the admin endpoints need the bearer token
TOKEN=bench-admin-token-0123456789
AUTH="Authorization: Bearer $TOKEN"

# generation: the generation /-/status reports, or 0.
generation() {
    curl -s --max-time 2 -H "$AUTH" "http://127.0.0.1:$PORT/-/status" | sed -n 's/.*"generation":\([0-9]*\).*/\1/p'
}

write_scripts 0
printf 'return { shutdown_delay = "0s", rescan_interval = "1h", token = "%s" }\n' "$TOKEN" >"$BENCH_TMP/agent.lua"
bench_port
bench_start_agent "$PORT" --config "$BENCH_TMP/agent.lua" --scripts "$scripts" --listen "127.0.0.1:$PORT" || bench_finish
bench_wait_status "http://127.0.0.1:$PORT/readyz" 200 || bench_finish
url=http://127.0.0.1:$PORT/readyz

# warm-up: results, caches and allocator arenas in place before measuring
wrk -t1 -c"$WRK_CONNS" -d2s "$url" >/dev/null 2>&1
for i in 1 2 3 4 5; do
    curl -s -o /dev/null -H "$AUTH" -X POST "http://127.0.0.1:$PORT/-/reload"
done
sleep 1
bench_rss "$HA_PID"; rss0=$RSS_KIB
gen0=$(generation)

out=$BENCH_TMP/wrk.txt
wrk -t2 -c"$WRK_CONNS" -d3600s --latency "$url" >"$out" 2>&1 &
wrk_pid=$!
sleep 0.5
start=$(date +%s.%N)
expect=$gen0
stuck=0
for i in $(seq 1 "$RELOADS"); do
    write_scripts "$i"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "$AUTH" -X POST "http://127.0.0.1:$PORT/-/reload")
    [ "$code" = 202 ] || { bench_fail "POST /-/reload answered $code in round $i"; break; }
    expect=$((expect + 1))
    # the directory watch may add its own reload of the same change: >= suffices
    for _ in $(seq 1 500); do
        g=$(generation)
        [ -n "$g" ] && [ "$g" -ge "$expect" ] && break
        sleep 0.01
    done
    if [ -z "$g" ] || [ "$g" -lt "$expect" ]; then stuck=1; bench_fail "round $i: generation $g, want >= $expect"; break; fi
    expect=$g
done
secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }')
kill -INT "$wrk_pid" 2>/dev/null
wait "$wrk_pid" 2>/dev/null
gen1=$(generation)
sleep 1
bench_rss "$HA_PID"; rss1=$RSS_KIB

requests=$(awk '/requests in/ { print $1 }' "$out")
non2xx=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' "$out")
sockerr=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$out")
non2xx=${non2xx:-0} sockerr=${sockerr:-0}
reloads=$((gen1 - gen0))
failed=$(grep -c "reload failed" "$BENCH_TMP/agent.log")
bench_log "wrk: ${requests:-?} requests, non-2xx $non2xx, socket errors $sockerr; $reloads reloads in $secs s; $failed failed"
[ "$stuck" = 0 ] || sed 's/^/  agent| /' "$BENCH_TMP/agent.log" | tail -n 20 >&2
[ -n "$requests" ] || { bench_fail "wrk gave no figures"; sed 's/^/  wrk| /' "$out" >&2; }
[ "$failed" = 0 ] || bench_fail "$failed reload(s) failed"

bench_table_begin "$RELOADS reloads under wrk -c$WRK_CONNS on /readyz ($CHECKS checks)"
bench_row "reloads done" count "$reloads" - info
bench_row "reloads per second" "1/s" "$(awk -v n="$reloads" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')" - info
bench_row "requests during the reloads" count "${requests:-0}" - info
bench_row "socket errors" count "$sockerr" - le 0
bench_row "non-2xx answers" count "$non2xx" - le 0
bench_row "VmRSS before" MiB "$(bench_mib "$rss0")" - info
bench_row "VmRSS after" MiB "$(bench_mib "$rss1")" - info
bench_row "VmRSS growth" MiB "$(bench_mib $((rss1 - rss0)))" - le 2
bench_stop "$HA_PID" agent
bench_finish
