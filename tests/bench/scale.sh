#!/usr/bin/env bash
# scale.sh: what 10,000 checks cost next to 10. Trivial readiness checks (ttl and
# interval 1h: every answer comes from the cached response), no trusted network,
# so GET /readyz is the anonymous answer (names and statuses only), as a load
# balancer or kubelet outside the pod sees it.
#   per byte    wrk -t1 -c50 (keep-alive) GET /readyz: bytes served per second at
#               10,000 checks against the same at 10 checks ("reference" column).
#               Target: within 2x (ratio >= 0.5).
#   reload      10,000 checks, one file changed, POST /-/reload: time until
#               /info shows the new generation. Target: < 1 s.
#   memory      VmRSS with 10, 1,000 and 10,000 checks after their first runs,
#               and RSS per check (10,000 against 10). Information.
# SCALE_N (default 10000) sets the large size.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl wrk awk

big=${SCALE_N:-10000}
token=bench-scale-token-0123456789
dur=${DUR:-5s}

# fixture DIR N [TAG]: N trivial readiness checks whose names are as long as a
# real one's (check-00042); TAG changes the source without changing a check.
fixture() {
    mkdir -p "$1"
    cat >"$1/many.lua" <<EOF
-- ${3:-v1}
for i = 1, $2 do
  health.check { name = ("check-%05d"):format(i), probes = { "readiness" }, ttl = "1h",
                 interval = "1h", run = function() return true, "ok " .. i end }
end
EOF
    cat >"$1.conf" <<EOF
return { trusted_networks = {}, token = "$token" }
EOF
}

# generation PORT: prints the generation /info reports (empty if none).
generation() {
    curl -s --max-time 1 -H "Authorization: Bearer $token" "http://127.0.0.1:$1/info" |
        grep -o -m 1 '"generation":[0-9]*' | head -n 1 | cut -d: -f2
}

declare -A rps bytes rss
reload_ms=-
for n in 10 1000 "$big"; do
    dir=$BENCH_TMP/fx-$n
    fixture "$dir" "$n"
    bench_port
    port=$PORT
    bench_start_agent "$port" --config "$dir.conf" --scripts "$dir" --listen "127.0.0.1:$port" || bench_finish
    if ! bench_wait_status "http://127.0.0.1:$port/readyz" 200 60; then
        bench_fail "$n checks: /readyz never answered 200 (last: $LAST_CODE)"
        bench_finish
    fi
    sleep 1
    bench_rss "$HA_PID"
    rss[$n]=$RSS_KIB
    body=$(curl -s --max-time 5 "http://127.0.0.1:$port/readyz")
    case $body in *'"output"'* | *'ok 1'*) bench_fail "$n checks: the anonymous /readyz shows outputs" ;; esac
    bytes[$n]=$(curl -s -o /dev/null -w '%{size_download}' --max-time 5 "http://127.0.0.1:$port/readyz")
    if [ "$n" != 1000 ]; then
        bench_wrk "agent-$n" "http://127.0.0.1:$port/readyz" "$dur"
        rps[$n]=$WRK_RPS
    fi
    if [ "$n" = "$big" ]; then
        g0=$(generation "$port")
        fixture "$dir" "$n" v2
        t0=$(date +%s%N)
        curl -s -o /dev/null --max-time 5 -X POST -H "Authorization: Bearer $token" "http://127.0.0.1:$port/-/reload"
        g1=$g0
        for _ in $(seq 1 1000); do
            g1=$(generation "$port")
            [ -n "$g1" ] && [ "$g1" != "$g0" ] && break
            sleep 0.005
        done
        t1=$(date +%s%N)
        if [ -n "$g1" ] && [ "$g1" != "$g0" ]; then
            reload_ms=$(( (t1 - t0) / 1000000 ))
        else
            bench_fail "$n checks: the reload never showed a new generation (still ${g0:-none})"
        fi
        bench_log "reload of $n checks: generation $g0 -> $g1 in $reload_ms ms (polling /info)"
    fi
    bench_log "$n checks: /readyz ${bytes[$n]} bytes, ${rps[$n]:-not measured} req/s, VmRSS ${rss[$n]} KiB"
    bench_stop "$HA_PID" agent
done

bps_small=$(awk -v r="${rps[10]}" -v b="${bytes[10]}" 'BEGIN { printf "%.1f", r * b / 1048576 }')
bps_big=$(awk -v r="${rps[$big]}" -v b="${bytes[$big]}" 'BEGIN { printf "%.1f", r * b / 1048576 }')
per_check=$(awk -v a="${rss[$big]}" -v b="${rss[10]}" -v n="$big" 'BEGIN { printf "%.0f", (a - b) * 1024 / (n - 10) }')

bench_table_begin "scale: $big checks against 10 (anonymous GET /readyz, wrk -t1 -c50 keep-alive $dur)"
bench_row "/readyz MiB/s, $big vs 10" MiB/s "$bps_big" "$bps_small" ratio_ge 0.5
bench_row "/readyz req/s, $big vs 10" req/s "${rps[$big]}" "${rps[10]}" info
bench_row "/readyz body, $big checks" KiB "$(awk -v b="${bytes[$big]}" 'BEGIN { printf "%.1f", b / 1024 }')" - info
bench_row "reload, $big checks" ms "$reload_ms" - lt 1000
bench_row "VmRSS, 10 checks" MiB "$(bench_mib "${rss[10]}")" - info
bench_row "VmRSS, 1000 checks" MiB "$(bench_mib "${rss[1000]}")" - info
bench_row "VmRSS, $big checks" MiB "$(bench_mib "${rss[$big]}")" - info
bench_row "RSS per check" B "$per_check" - info
bench_finish
