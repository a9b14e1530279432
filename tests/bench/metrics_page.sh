#!/usr/bin/env bash
# metrics_page.sh: cost of GET /metrics and of the status page (GET /) with 10, 1,000
# and 10,000 checks: front CPU per request (the front thread's run time from
# /proc/PID/task/PID/schedstat over the requests, curl's own cost excluded; one
# keep-alive connection at 20 requests/s), curl's median latency and the body size. Two states per size:
#   steady    checks with interval 1h: after their first run nothing changes, every
#             request is served from the views built once (plus the scrape-time tail
#             of /metrics: probes, engine, process_*)
#   changing  checks with interval 1s: a new snapshot arrives between two requests,
#             so every request renders the view again
# Then the idle agent on the bundled scripts after a scrape and a page view: VmRSS.
# Targets: /metrics of 1,000 checks < 1 ms front CPU (steady and changing);
#          idle VmRSS <= 5 MiB with /metrics and the page served.
# SIZES="10 1000" limits the sizes; REQS (default 40) requests per measurement.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl awk

reqs=${REQS:-40}

# fixture DIR N INTERVAL: N trivial checks, each returning a short output.
fixture() {
    mkdir -p "$1"
    cat >"$1/many.lua" <<EOF
for i = 1, $2 do
  health.check { name = ("check-%05d"):format(i), interval = "$3", run = function() return true, "ok " .. i end }
end
EOF
}

# front_ns PID: the front (main) thread's CPU time so far, in ns.
front_ns() { awk '{ print $1 }' "/proc/$1/task/$1/schedstat"; }

# measure PORT PATH: sets CPU_MS (front CPU per request, less IDLE_MS, the front's
# CPU over the same time without requests, per request), LAT_MS (median curl
# time_total) and BYTES (body size of the last request). One keep-alive
# connection, as a Prometheus server scrapes, 20 requests a second.
measure() {
    local url=http://127.0.0.1:$1$2 t0 t1 args=() _ out
    curl -s -o /dev/null "$url" # warm: builds what is built on first use
    for _ in $(seq 1 "$reqs"); do args+=(-o /dev/null "$url"); done
    # the front's own work meanwhile (taking the snapshots of changing checks)
    # is measured over a window as long as the requests take, and subtracted
    t0=$(front_ns "$HA_PID")
    sleep "$(awk -v n="$reqs" 'BEGIN { print n / 20 }')"
    t1=$(front_ns "$HA_PID")
    IDLE_MS=$(awk -v a="$t0" -v b="$t1" -v n="$reqs" 'BEGIN { printf "%.3f", (b - a) / n / 1e6 }')
    t0=$(front_ns "$HA_PID")
    out=$(curl -s --rate 20/s --max-time 120 -w '%{http_code} %{time_total} %{size_download}\n' "${args[@]}")
    t1=$(front_ns "$HA_PID")
    if [ "$(awk '$1 != 200' <<<"$out" | wc -l)" != 0 ] || [ "$(wc -l <<<"$out")" != "$reqs" ]; then
        bench_fail "GET $2: not $reqs answers of 200: $(sort <<<"$out" | uniq -c | head -3)"
    fi
    BYTES=$(tail -n 1 <<<"$out" | awk '{ print $3 }')
    CPU_MS=$(awk -v a="$t0" -v b="$t1" -v n="$reqs" -v i="$IDLE_MS" 'BEGIN { v = (b - a) / n / 1e6 - i; printf "%.3f", (v > 0 ? v : 0) }')
    LAT_MS=$(awk '{ print $2 }' <<<"$out" | sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", v[int((NR + 1) / 2)] * 1000 }')
}

rows=()
for n in ${SIZES:-10 1000 10000}; do
    for state in steady changing; do
        interval=1h
        [ "$state" = changing ] && interval=1s
        dir=$BENCH_TMP/fx-$n-$state
        fixture "$dir" "$n" "$interval"
        bench_port
        port=$PORT
        bench_start_agent "$port" --scripts "$dir" --listen "127.0.0.1:$port" || bench_finish
        if ! bench_wait_status "http://127.0.0.1:$port/readyz" 200 60; then
            bench_fail "$n checks: /readyz never answered 200 (last: $LAST_CODE)"
            bench_finish
        fi
        sleep 2 # every check has run; the changing ones run again every second
        measure "$port" /metrics
        rows+=("/metrics $n checks, $state|$CPU_MS|$LAT_MS|$BYTES|$n")
        bench_log "/metrics $n $state: front $CPU_MS ms/req (idle front $IDLE_MS ms per request slot), curl $LAT_MS ms, $BYTES bytes"
        measure "$port" /
        rows+=("/ (page) $n checks, $state|$CPU_MS|$LAT_MS|$BYTES|-")
        bench_log "/ $n $state: front $CPU_MS ms/req (idle front $IDLE_MS ms per request slot), curl $LAT_MS ms, $BYTES bytes"
        bench_stop "$HA_PID" agent
    done
done

# idle memory with the views in use: bundled scripts, as idle_rss.sh, plus a scrape
bench_port
port=$PORT
bench_start_agent "$port" --listen "127.0.0.1:$port" || bench_finish
sleep 2
for _ in 1 2 3; do
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz"
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/metrics"
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/"
done
sleep 1
bench_rss "$HA_PID"
idle_rss=$RSS_KIB
bench_stop "$HA_PID" agent

bench_table_begin "/metrics and the status page ($reqs keep-alive requests at 20/s each; front CPU from schedstat)"
for row in "${rows[@]}"; do
    IFS='|' read -r what cpu lat bytes n <<<"$row"
    if [ "$n" = 1000 ]; then
        bench_row "$what: front CPU" ms "$cpu" - lt 1
    else
        bench_row "$what: front CPU" ms "$cpu" - info
    fi
    bench_row "$what: latency" ms "$lat" - info
    bench_row "$what: body" KiB "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1024 }')" - info
done
bench_row "idle VmRSS after /metrics and /" MiB "$(bench_mib "$idle_rss")" - le 5
bench_finish
