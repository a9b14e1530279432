#!/usr/bin/env bash
# conn_close.sh: a new connection per probe, the pattern kubelet's HTTP prober
# uses (keep-alives disabled): GET /readyz answered from the cached response,
# healthagent next to the bare libh2o reference and the peers this machine has
# (the h2o 2.2.5 server with one thread, nginx with one worker, Go net/http with
# GOMAXPROCS=1), all measured in this run, servers on CPU 0 and clients on CPU 1.
#
# Two clients, each in interleaved rounds (every server once per round, the first
# one changing from round to round), medians shown:
#   wrk -t1 -c50 -H 'Connection: close' -d$DUR      $ROUNDS (default 7) rounds
#   ($DUR default 3s)                               (50 connections at a time)
#   peers/kubelet_client.go for $KDUR (default 5 s)  $KROUNDS (default 5) rounds
#                                                   (one probe after another, as
#                                                   kubelet's prober does)
# The kubelet-like client waits on each answer, so its figure is a latency, and
# this host's latency drifts by tens of percent within seconds: in each round
# one client probes every server in turn (one probe each, then again; the
# first server changes from round to round), so all are measured in the same
# moments, and its probes/s for a server are per second spent probing it.
# Target: agent >= 1.05 x the best of the h2o server, nginx and Go net/http. A
# ratio is the median of the per-round ratios (the agent over the peer in the
# same round): run after run, one server's wrk figure here moves by 10-20 %,
# and the ratio of two medians moved with it; the best peer is the one with the
# lowest such ratio.
# Also shown, with no target: each server's own CPU time per probe (user + system
# of its process tree over the run, divided by the probes it answered), and how
# busy the client's CPU was during wrk: at or near 100 %, the wrk figures are
# bound by the client and the kernel's loopback TCP work on the client's CPU,
# and say little about the server.
# Peers that are not installed are left out (apt-get install h2o nginx-light
# golang-go brings them); the reference server and the Go client are built here.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl wrk go

rounds=${ROUNDS:-7}
wdur=${DUR:-3s}
krounds=${KROUNDS:-5}
kdur=${KDUR:-5}
bench_go_build ha_kubelet_client kubelet_client.go; kubelet=$GO_BIN
bench_go_build ha_nethttp_server nethttp_server.go; nethttp=$GO_BIN

names=() urls=() pids=()
# add_server NAME PORT: records a server bench_start has just started
add_server() { names+=("$1"); urls+=("http://127.0.0.1:$2/readyz"); pids+=("$SERVER_PID"); }

bench_port
bench_start_agent "$PORT" --scripts "$BENCH_DIR/fixtures/cached" --listen "127.0.0.1:$PORT" || bench_finish
add_server agent "$PORT"
bench_wait_status "${urls[0]}" 200 10 || { bench_fail "agent /readyz never answered 200 (last: $LAST_CODE)"; bench_finish; }
bench_port
bench_start_ref "$PORT" || bench_finish
add_server ref "$PORT"
bench_port
bench_start nethttp "$PORT" env GOMAXPROCS=1 "$nethttp" "$PORT" || bench_finish
add_server nethttp "$PORT"
if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then
    bench_port
    mkdir -p "$BENCH_TMP/nginx"
    sed -e "s|@PORT@|$PORT|g" -e "s|@DIR@|$BENCH_TMP/nginx|g" "$BENCH_DIR/peers/nginx.conf.in" >"$BENCH_TMP/nginx/nginx.conf"
    bench_start nginx "$PORT" "$(command -v nginx || echo /usr/sbin/nginx)" -p "$BENCH_TMP/nginx" -c "$BENCH_TMP/nginx/nginx.conf" &&
        add_server nginx "$PORT"
else
    bench_log "nginx not installed: left out"
fi
if command -v h2o >/dev/null; then
    bench_port
    dir=$BENCH_TMP/h2o
    mkdir -p "$dir" && chmod 755 "$dir" "$BENCH_TMP"
    printf '%s' '{"status":"UP","components":{"self":{"status":"UP"}}}' >"$dir/body.json"
    chmod 644 "$dir/body.json"
    sed -e "s|@PORT@|$PORT|g" -e "s|@DIR@|$dir|g" "$BENCH_DIR/peers/h2o.conf.in" >"$dir/h2o.conf"
    bench_start h2o "$PORT" h2o -c "$dir/h2o.conf" && add_server h2o "$PORT"
else
    bench_log "h2o server not installed: left out"
fi

# warm-up: connection paths, page faults, CPU frequency
for k in "${!names[@]}"; do
    "${BENCH_LOAD_CPU[@]}" wrk -t1 -c50 -d1s -H 'Connection: close' "${urls[$k]}" >/dev/null 2>&1
done

declare -A wrk_runs kube_runs kube_p99 wrk_cpu kube_cpu
tck=$(getconf CLK_TCK)
client_busy='' # the load CPU's busy share during each wrk run, in %
# cpu_per_probe TICKS PROBES: microseconds of CPU per probe
cpu_per_probe() { awk -v t="$1" -v n="$2" -v hz="$tck" 'BEGIN { if (n + 0 > 0) printf "%.1f", t * 1e6 / hz / n; else print 0 }'; }
# kubelet_round R: one kubelet-like run over every server in turn, the first
# being server R mod n; appends each one's probes/s, p99 (us) and CPU per probe (us)
kubelet_round() {
    local n=${#names[@]} i k list='' out line rc
    local -a order t0
    for i in $(seq 0 $((n - 1))); do order+=($(((i + $1) % n))); done
    for k in "${order[@]}"; do
        list="$list${list:+,}${urls[$k]}"
        t0[k]=$(bench_cpu_ticks "${pids[$k]}")
    done
    out=$("${BENCH_LOAD_CPU[@]}" "$kubelet" "$list" "$kdur" 2>&1)
    rc=$?
    for k in "${order[@]}"; do
        local t1 name=${names[$k]}
        t1=$(bench_cpu_ticks "${pids[$k]}")
        line=$(printf '%s\n' "$out" | grep -F "url=${urls[$k]} ")
        bench_log "kubelet-like client $name (round $1): ${line#url=* }"
        kube_runs[$name]="${kube_runs[$name]:-} $(printf '%s\n' "$line" | sed -n 's/.*rps=\([0-9.]*\).*/\1/p')"
        kube_p99[$name]="${kube_p99[$name]:-} $(printf '%s\n' "$line" | sed -n 's/.*p99_us=\([0-9]*\).*/\1/p')"
        kube_cpu[$name]="${kube_cpu[$name]:-} $(cpu_per_probe $((t1 - t0[k])) "$(printf '%s\n' "$line" | sed -n 's/.* probes=\([0-9]*\).*/\1/p')")"
    done
    if [ "$rc" -ne 0 ]; then
        bench_fail "kubelet-like client (round $1): failed probes ($(printf '%s\n' "$out" | grep -v '^url=' | head -3))"
        return 1
    fi
}
# wrk_run NAME#ROUND URL PID: one wrk run, with the server's CPU per request and
# the load CPU's busy share
wrk_run() {
    local t0 t1 c0 c1 w0 w1 n=${1%#*}
    t0=$(bench_cpu_ticks "$3")
    [ ${#BENCH_LOAD_CPU[@]} -eq 0 ] || c0=$(bench_cpu_busy_ticks 1)
    w0=$(date +%s%N)
    bench_wrk "$1" "$2" "$wdur" "Connection: close"
    w1=$(date +%s%N)
    t1=$(bench_cpu_ticks "$3")
    wrk_runs[$n]="${wrk_runs[$n]:-} $WRK_RPS"
    wrk_cpu[$n]="${wrk_cpu[$n]:-} $(cpu_per_probe $((t1 - t0)) "${WRK_REQUESTS:-0}")"
    if [ ${#BENCH_LOAD_CPU[@]} -gt 0 ]; then
        c1=$(bench_cpu_busy_ticks 1)
        client_busy="$client_busy $(awk -v c=$((c1 - c0)) -v w=$((w1 - w0)) -v hz="$tck" 'BEGIN { printf "%.0f", c * 100 / (w / 1e9 * hz) }')"
    fi
}
# every server once a round, the first one changing from round to round
for round in $(seq 1 "$rounds"); do
    for i in "${!names[@]}"; do
        k=$(((i + round) % ${#names[@]}))
        wrk_run "${names[$k]}#$round" "${urls[$k]}" "${pids[$k]}"
    done
done
for round in $(seq 1 "$krounds"); do
    kubelet_round "$round"
done

declare -A wrk_med kube_med kube_p99_med wrk_cpu_med kube_cpu_med
for n in "${names[@]}"; do
    # shellcheck disable=SC2086  # the runs are a word list
    wrk_cpu_med[$n]=$(bench_median ${wrk_cpu[$n]:-0})
    # shellcheck disable=SC2086
    kube_cpu_med[$n]=$(bench_median ${kube_cpu[$n]:-0})
    # shellcheck disable=SC2086  # the runs are a word list
    wrk_med[$n]=$(bench_median ${wrk_runs[$n]})
    # shellcheck disable=SC2086
    kube_med[$n]=$(bench_median ${kube_runs[$n]:-0})
    # shellcheck disable=SC2086
    kube_p99_med[$n]=$(bench_median ${kube_p99[$n]:-0})
done
# The best peer is the one the agent leads by least, each ratio being the median
# of the per-round ratios (bench_paired_ratio: both measured in the same round);
# the reference is the yardstick, not a peer.
best_wrk=- best_kube=- best_wrk_name=- best_kube_name=-
declare -A wrk_pair kube_pair
for n in "${names[@]}"; do
    [ "$n" = agent ] && continue
    wrk_pair[$n]=$(bench_paired_ratio "${wrk_runs[agent]}" "${wrk_runs[$n]}")
    kube_pair[$n]=$(bench_paired_ratio "${kube_runs[agent]:-}" "${kube_runs[$n]:-}")
    [ "$n" = ref ] && continue
    if [ "$best_wrk" = - ] || awk -v a="${wrk_pair[$n]}" -v b="$best_wrk" 'BEGIN { exit !(a < b) }'; then
        best_wrk=${wrk_pair[$n]} best_wrk_name=$n
    fi
    if [ "$best_kube" = - ] || awk -v a="${kube_pair[$n]}" -v b="$best_kube" 'BEGIN { exit !(a < b) }'; then
        best_kube=${kube_pair[$n]} best_kube_name=$n
    fi
done

bench_table_begin "connection per probe, GET /readyz (medians: wrk -t1 -c50 -H 'Connection: close' -d$wdur, $rounds rounds, paired ratios; kubelet-like client over all in turn ${kdur}s, $krounds rounds)"
for n in "${names[@]}"; do
    [ "$n" = agent ] && continue
    bench_row "wrk close req/s vs $n" "" "${wrk_med[agent]}" "${wrk_med[$n]}" info - "${wrk_pair[$n]}"
done
[ "$best_wrk_name" = - ] ||
    bench_row "wrk close vs best ($best_wrk_name)" "" "${wrk_med[agent]}" "${wrk_med[$best_wrk_name]}" ratio_ge 1.05 "$best_wrk"
for n in "${names[@]}"; do
    [ "$n" = agent ] && continue
    bench_row "kubelet probes/s vs $n" "" "${kube_med[agent]}" "${kube_med[$n]}" info - "${kube_pair[$n]}"
done
[ "$best_kube_name" = - ] ||
    bench_row "kubelet vs best ($best_kube_name)" "" "${kube_med[agent]}" "${kube_med[$best_kube_name]}" ratio_ge 1.05 "$best_kube"
bench_row "kubelet p99 vs ref" us "${kube_p99_med[agent]}" "${kube_p99_med[ref]}" info
for n in "${names[@]}"; do
    [ "$n" = agent ] && continue
    bench_row "server CPU/probe, wrk, vs $n" us "${wrk_cpu_med[agent]}" "${wrk_cpu_med[$n]}" info
done
for n in "${names[@]}"; do
    [ "$n" = agent ] && continue
    bench_row "server CPU/probe, kubelet, vs $n" us "${kube_cpu_med[agent]}" "${kube_cpu_med[$n]}" info
done
if [ -n "$client_busy" ]; then
    # shellcheck disable=SC2086  # the runs are a word list
    busy=$(printf "%.0f" "$(bench_median $client_busy)")
    echo "the client's CPU (1) was ${busy}% busy during wrk (median of the runs: $client_busy)"
    if [ "$busy" -ge 90 ]; then
        echo "note: at ${busy}% the wrk req/s are bound by the client's CPU (wrk and the loopback TCP work it"
        echo "      drives), not by the servers; the servers' own cost is the CPU per probe above"
    fi
fi

stop_args=()
for k in "${!names[@]}"; do stop_args+=("${pids[$k]}" "${names[$k]}"); done
bench_stop "${stop_args[@]}"
bench_finish
