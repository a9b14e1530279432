#!/usr/bin/env bash
# p99_hanging_1000.sh: /readyz tail latency while 1,000 checks hang in connect().
# The fixture (fixtures/hanging/hanging.lua) runs 1,000 liveness checks that each
# tcp.connect to the harness's full-backlog listener (HA_BACKLOG_PORT: the SYNs are
# dropped, connect never completes) with a 2 s timeout and a 2 s interval, so about
# 500 connects are always pending and about 250 runs a second are cancelled at their
# deadline; plus one cached readiness check `ok`. wrk --latency (-t1 -c50, $P99_DUR,
# default 10s) on /readyz, agent then reference under the same load generator,
# starting once the first cancellations have happened (/livez out of INIT).
# Also: the agent's CPU share (whole process, front thread, other threads) with the
# checks alone and during wrk, its RSS, and the connects in flight (SYN-SENT).
# Target: agent p99 < 2 ms.
#
# The backlog listener comes from tests/harness/servers.sh. With HA_HARNESS_DIR set
# to a running harness, its HA_BACKLOG_PORT is used; otherwise this script starts
# one (as root) in $HANGING_HARNESS_DIR (default /tmp/ha-harness-bench-hanging) with
# HA_PORT_BASE (default 25800) and stops it at exit (about 5-10 s each way).
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl wrk ss

dur=${P99_DUR:-10s}
hz=$(getconf CLK_TCK)
harness_dir='' harness_ours=0

# Stop the agent and the reference (lib.sh's cleanup), then a harness we started.
# shellcheck disable=SC2317  # run by the EXIT trap
p99h_cleanup() {
    bench__cleanup
    if [ "$harness_ours" = 1 ]; then
        "$BENCH_ROOT/tests/harness/servers.sh" stop "$harness_dir" >/dev/null 2>&1
    fi
}
trap p99h_cleanup EXIT

# stat_ticks FILE: utime + stime (clock ticks) from a /proc/.../stat file.
stat_ticks() { sed 's/^.*) //' "$1" 2>/dev/null | awk '{ print $12 + $13 }'; }

# cpu_sample PID: sets CPU_T (wall clock, s), CPU_ALL (ticks of the process) and
# CPU_MAIN (ticks of its main thread: the h2o front in the agent).
cpu_sample() {
    CPU_T=$(date +%s.%N)
    CPU_ALL=$(stat_ticks "/proc/$1/stat")
    CPU_MAIN=$(stat_ticks "/proc/$1/task/$1/stat")
}

# cpu_pct T0 T1 TICKS0 TICKS1: prints the share of one CPU used between T0 and T1.
cpu_pct() {
    awk -v t0="$1" -v t1="$2" -v a="$3" -v b="$4" -v hz="$hz" \
        'BEGIN { printf "%.1f", (t1 > t0 ? 100 * (b - a) / hz / (t1 - t0) : 0) }'
}

# wrk_p50 NAME: p50 in ms from the newest wrk output bench_wrk kept for NAME.
wrk_p50() {
    local f
    f=$(find "$BENCH_TMP" -maxdepth 1 -name "wrk.$1.*.txt" -printf '%T@ %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)
    [ -n "$f" ] || { echo 0; return; }
    awk '$1 == "50%" {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000
        printf "%.3f", v }' "$f"
}

# syn_sent PORT: connects to 127.0.0.1:PORT waiting for the handshake, less
# $syn_base (the harness's own fillers, counted before the agent starts). No
# ss -p: walking every process's fds twice a second would load the host.
syn_base=0
syn_sent() { echo $(($(ss -Htn state syn-sent "dport = :$1" 2>/dev/null | wc -l) - syn_base)); }

# sampler_start PID PORT FILE: every 0.5 s, appends "SYN-SENT open-fds-of-PID" to FILE
# until sampler_stop. Sets SAMPLER_PID.
sampler_start() {
    (
        while kill -0 "$1" 2>/dev/null; do
            printf '%s %s\n' "$(syn_sent "$2")" "$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
            sleep 0.5
        done
    ) >"$3" &
    SAMPLER_PID=$!
}
sampler_stop() { kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; }

# sampler_stats FILE COLUMN: prints "min mean max" of a column sampler_start wrote.
sampler_stats() {
    awk -v c="$2" 'NR == 1 || $c < lo { lo = $c } NR == 1 || $c > hi { hi = $c } { s += $c }
        END { if (NR) printf "%d %.0f %d", lo, s / NR, hi; else print "0 0 0" }' "$1"
}

# --- the full-backlog listener --------------------------------------------------
if [ -n "${HA_HARNESS_DIR:-}" ] && [ -f "$HA_HARNESS_DIR/env" ]; then
    harness_dir=$HA_HARNESS_DIR
    bench_log "using the running harness in $harness_dir"
else
    harness_dir=${HANGING_HARNESS_DIR:-/tmp/ha-harness-bench-hanging}
    [ "$(id -u)" = 0 ] || { bench_fail "the harness must be started as root (or set HA_HARNESS_DIR to a running one)"; bench_finish; }
    bench_log "starting the harness in $harness_dir (HA_PORT_BASE=${HA_PORT_BASE:-25800})"
    harness_ours=1
    if ! HA_PORT_BASE=${HA_PORT_BASE:-25800} "$BENCH_ROOT/tests/harness/servers.sh" start "$harness_dir" \
        >"$BENCH_TMP/harness.log" 2>&1; then
        bench_fail "tests/harness/servers.sh start $harness_dir failed"
        tail -n 20 "$BENCH_TMP/harness.log" | sed 's/^/  harness| /' >&2
        bench_finish
    fi
fi
backlog_port=$(sed -n 's/^export HA_BACKLOG_PORT=\([0-9]*\)$/\1/p' "$harness_dir/env")
[ -n "$backlog_port" ] || { bench_fail "no HA_BACKLOG_PORT in $harness_dir/env"; bench_finish; }
# curl exit 28 is a connect timeout: the listener really hangs (7 would be refused).
curl -s -o /dev/null --connect-timeout 0.5 "http://127.0.0.1:$backlog_port/"
rc=$?
[ "$rc" = 28 ] || { bench_fail "connect to the backlog port $backlog_port did not hang (curl exit $rc)"; bench_finish; }
bench_log "backlog listener on 127.0.0.1:$backlog_port: connect hangs"
export HA_BACKLOG_PORT=$backlog_port
syn_base=$(syn_sent "$backlog_port")

# --- servers ------------------------------------------------------------------
bench_start_pair hanging
# The first runs all start at load and are cut off at 2 s: wait until none is INIT.
if ! bench_wait_decided "$ha_port" 60; then
    bench_fail "agent /livez still has INIT checks after 6 s"
    bench_finish
fi

# The checks alone, for 3 s: what hanging and cancelling costs with no probes.
cpu_sample "$HA_PID"; t0=$CPU_T a0=$CPU_ALL m0=$CPU_MAIN
sleep 3
cpu_sample "$HA_PID"
idle_all=$(cpu_pct "$t0" "$CPU_T" "$a0" "$CPU_ALL")
idle_main=$(cpu_pct "$t0" "$CPU_T" "$m0" "$CPU_MAIN")
idle_other=$(cpu_pct "$t0" "$CPU_T" $((a0 - m0)) $((CPU_ALL - CPU_MAIN)))
bench_log "checks alone: agent ${idle_all}% of a CPU (front ${idle_main}%, other threads ${idle_other}%)"

# Warm both up (connection paths, page faults), then measure.
"${BENCH_LOAD_CPU[@]}" wrk -t1 -c50 -d1s "$ref_url" >/dev/null 2>&1
"${BENCH_LOAD_CPU[@]}" wrk -t1 -c50 -d1s "$ha_url" >/dev/null 2>&1

cpu_sample "$HA_PID"; t0=$CPU_T a0=$CPU_ALL m0=$CPU_MAIN
sampler_start "$HA_PID" "$backlog_port" "$BENCH_TMP/wrk.samples"
bench_wrk agent "$ha_url" "$dur"
sampler_stop
ha_p99=$WRK_P99_MS ha_rps=$WRK_RPS ha_p50=$(wrk_p50 agent)
cpu_sample "$HA_PID"
ha_cpu=$(cpu_pct "$t0" "$CPU_T" "$a0" "$CPU_ALL")
ha_main=$(cpu_pct "$t0" "$CPU_T" "$m0" "$CPU_MAIN")
ha_other=$(cpu_pct "$t0" "$CPU_T" $((a0 - m0)) $((CPU_ALL - CPU_MAIN)))
read -r syn_min syn_mean syn_max < <(sampler_stats "$BENCH_TMP/wrk.samples" 1)
read -r fd_min fd_mean fd_max < <(sampler_stats "$BENCH_TMP/wrk.samples" 2)
bench_log "during wrk: connects in SYN-SENT min/mean/max $syn_min/$syn_mean/$syn_max, open fds $fd_min/$fd_mean/$fd_max"
bench_rss "$HA_PID"; ha_rss=$RSS_KIB ha_hwm=$HWM_KIB

cpu_sample "$REF_PID"; t0=$CPU_T a0=$CPU_ALL
bench_wrk ref "$ref_url" "$dur"
ref_p99=$WRK_P99_MS ref_rps=$WRK_RPS ref_p50=$(wrk_p50 ref)
cpu_sample "$REF_PID"
ref_cpu=$(cpu_pct "$t0" "$CPU_T" "$a0" "$CPU_ALL")
bench_rss "$REF_PID"; ref_rss=$RSS_KIB ref_hwm=$HWM_KIB

# The checks must really have hung: every one DOWN with a timeout, none UP.
if [ "$HA_BIN" != ref ]; then
    body=$(curl -s --max-time 5 "http://127.0.0.1:$ha_port/healthz")
    comps=$(grep -o '"hang[0-9]*":{"status":"[A-Z]*"[^}]*}' <<<"$body")
    n_all=$(grep -c . <<<"$comps")
    n_up=$(grep -c '"status":"UP"' <<<"$comps")
    n_timeout=$(grep -c '"status":"DOWN","output":"[^"]*timeout' <<<"$comps")
    bench_log "after the runs: $n_all hanging checks in /healthz, $n_timeout DOWN with a timeout, $n_up UP"
    [ "$n_all" = 1000 ] || bench_fail "/healthz lists $n_all of the 1000 hanging checks"
    [ "$n_up" = 0 ] || bench_fail "$n_up checks connected: the backlog listener is not full"
    [ "$n_timeout" = 1000 ] || bench_fail "only $n_timeout of 1000 hanging checks are DOWN with a timeout"
    # One connect per check at most: more means cancelled connects were not closed.
    [ "$syn_max" -le 1000 ] || bench_fail "up to $syn_max connects in SYN-SENT: cancelled connects are not closed"
    [ "$syn_max" -gt 0 ] || bench_fail "no connect in SYN-SENT during wrk: the checks did not hang"
fi

bench_table_begin "/readyz while 1,000 checks hang on a full-backlog listener (wrk -t1 -c50 -d$dur --latency)"
bench_row "wrk p99 latency" ms "$ha_p99" "$ref_p99" lt 2
bench_row "wrk p50 latency" ms "$ha_p50" "$ref_p50" info
bench_row "wrk req/s" "" "$ha_rps" "$ref_rps" info
bench_row "CPU during wrk (1 CPU=100)" % "$ha_cpu" "$ref_cpu" info
bench_row "  front thread" % "$ha_main" - info
bench_row "  engine + other threads" % "$ha_other" - info
bench_row "CPU, checks alone (3 s)" % "$idle_all" - info
bench_row "  front thread" % "$idle_main" - info
bench_row "  engine + other threads" % "$idle_other" - info
bench_row "VmRSS after wrk" MiB "$(bench_mib "$ha_rss")" "$(bench_mib "$ref_rss")" info
bench_row "VmHWM (peak RSS)" MiB "$(bench_mib "$ha_hwm")" "$(bench_mib "$ref_hwm")" info
bench_row "SYN-SENT during wrk, mean" "" "$syn_mean" - info
bench_row "SYN-SENT during wrk, max" "" "$syn_max" - info
bench_row "open fds during wrk, max" "" "$fd_max" - info

bench_stop "$HA_PID" agent "$REF_PID" ref
bench_finish
