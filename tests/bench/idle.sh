#!/usr/bin/env bash
# idle.sh: what an idle agent costs. Starts `$HA_BIN --listen 127.0.0.1:<port>`
# (the bundled scripts, no optional listener), waits until its checks are decided,
# then sends nothing for $IDLE_DUR seconds (default 60, at least 20) and reads, at
# the start and the end of that window, for every thread of the process:
#   wake-ups   voluntary + involuntary context switches (/proc/PID/task/TID/status)
#   CPU        time on a CPU in nanoseconds (/proc/PID/task/TID/schedstat)
# and the process's VmRSS at the end. The reference server is measured the same way.
# Targets: at most 2 wake-ups per second per thread, CPU under 0.01% of a core,
# VmRSS at most 5 MiB.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl

dur=${IDLE_DUR:-60}
[ "$dur" -ge 20 ] || { bench_log "IDLE_DUR=$dur is too short to count wake-ups: using 20"; dur=20; }

# sample PID: prints one line per thread: "TID NAME SWITCHES CPU_NS"
sample() {
    local t name sw cpu
    for t in /proc/"$1"/task/*; do
        name=$(cat "$t/comm" 2>/dev/null) || continue
        sw=$(awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { s += $2 } END { print s + 0 }' "$t/status" 2>/dev/null)
        cpu=$(awk '{ print $1 }' "$t/schedstat" 2>/dev/null)
        printf '%s %s %s %s\n' "${t##*/}" "${name// /_}" "${sw:-0}" "${cpu:-0}"
    done
}

# measure NAME BEFORE AFTER: per thread wake-ups/s and the process's CPU share of a
# core over the window; sets MAX_WAKE (the busiest thread), MAX_WAKE_THREAD, CPU_PCT
# and logs one line per thread
measure() {
    local out
    out=$(awk -v d="$dur" -v who="$1" '
        NR == FNR { sw[$1] = $3; cpu[$1] = $4; next }
        ($1 in sw) {
            w = ($3 - sw[$1]) / d; c += $4 - cpu[$1]
            printf "# %s thread %s (%s): %.2f wake-ups/s, %.3f ms CPU\n", who, $1, $2, w, ($4 - cpu[$1]) / 1e6 > "/dev/stderr"
            if (w >= mw) { mw = w; mt = $2 }
        }
        END { printf "%.2f %s %.5f\n", mw, mt, 100 * c / (d * 1e9) }' "$2" "$3")
    read -r MAX_WAKE MAX_WAKE_THREAD CPU_PCT <<<"$out"
}

bench_port; ref_port=$PORT
bench_start_ref "$ref_port" || bench_finish
bench_port; ha_port=$PORT
bench_start_agent "$ha_port" --listen "127.0.0.1:$ha_port" || bench_finish
bench_wait_decided "$ha_port" 100 || bench_log "some bundled checks are still INIT after 10 s"
sleep 1 # let the first runs' timers and the answer above settle

sample "$HA_PID" >"$BENCH_TMP/ha.before"
sample "$REF_PID" >"$BENCH_TMP/ref.before"
bench_log "idle for $dur s: no requests"
sleep "$dur"
sample "$HA_PID" >"$BENCH_TMP/ha.after"
sample "$REF_PID" >"$BENCH_TMP/ref.after"
bench_rss "$HA_PID"; ha_rss=$RSS_KIB
bench_rss "$REF_PID"; ref_rss=$RSS_KIB

measure agent "$BENCH_TMP/ha.before" "$BENCH_TMP/ha.after"
ha_wake=$MAX_WAKE ha_wake_thread=$MAX_WAKE_THREAD ha_cpu=$CPU_PCT
measure ref "$BENCH_TMP/ref.before" "$BENCH_TMP/ref.after"
ref_wake=$MAX_WAKE ref_cpu=$CPU_PCT

bench_table_begin "idle agent, bundled scripts, ${dur} s without requests"
bench_row "wake-ups/s, busiest thread" /s "$ha_wake" "$ref_wake" le 2
bench_log "the agent's busiest thread: $ha_wake_thread"
bench_row "CPU, % of one core" % "$ha_cpu" "$ref_cpu" lt 0.01
bench_row "VmRSS" MiB "$(bench_mib "$ha_rss")" "$(bench_mib "$ref_rss")" le 5

bench_stop "$HA_PID" agent "$REF_PID" ref
bench_finish
