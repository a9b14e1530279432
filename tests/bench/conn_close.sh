#!/usr/bin/env bash
# conn_close.sh: a new connection per probe, the pattern kubelet's HTTP prober
# uses (keep-alives disabled): GET /readyz answered from the cached response,
# healthagent next to the bare libh2o reference and the peers this machine has
# (the h2o 2.2.5 server with one thread, nginx with one worker, Go net/http with
# GOMAXPROCS=1), all measured in this run, servers on CPU 0 and clients on CPU 1.
#
# Two clients, each in $ROUNDS (default 3) interleaved rounds, median reported:
#   wrk -t1 -c50 -H 'Connection: close' -d$DUR      (50 connections at a time)
#   peers/kubelet_client.go for $KDUR (default 3 s) (one probe after another,
#                                                    as kubelet's prober does)
# Target: agent >= 1.05 x the best of the h2o server, nginx and Go net/http.
# Peers that are not installed are left out (apt-get install h2o nginx-light
# golang-go brings them); the reference server and the Go client are built here.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl wrk go

rounds=${ROUNDS:-3}
kdur=${KDUR:-3}
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

declare -A wrk_runs kube_runs kube_p99
# kubelet_run NAME URL: one kubelet-like run; appends its probes/s and p99 (us)
kubelet_run() {
    local out
    out=$("${BENCH_LOAD_CPU[@]}" "$kubelet" "$2" "$kdur" 2>&1)
    local rc=$?
    bench_log "kubelet-like client $1 $2: $out"
    if [ "$rc" -ne 0 ]; then
        bench_fail "kubelet-like client against $1: failed probes ($out)"
        return 1
    fi
    kube_runs[$1]="${kube_runs[$1]:-} $(printf '%s\n' "$out" | sed -n 's/.*rps=\([0-9.]*\).*/\1/p')"
    kube_p99[$1]="${kube_p99[$1]:-} $(printf '%s\n' "$out" | sed -n 's/.*p99_us=\([0-9]*\).*/\1/p')"
}
for round in $(seq 1 "$rounds"); do
    for k in "${!names[@]}"; do
        bench_wrk "${names[$k]}#$round" "${urls[$k]}" "${DUR:-5s}" "Connection: close"
        wrk_runs[${names[$k]}]="${wrk_runs[${names[$k]}]:-} $WRK_RPS"
        kubelet_run "${names[$k]}" "${urls[$k]}"
    done
done

declare -A wrk_med kube_med kube_p99_med
for n in "${names[@]}"; do
    # shellcheck disable=SC2086  # the runs are a word list
    wrk_med[$n]=$(bench_median ${wrk_runs[$n]})
    # shellcheck disable=SC2086
    kube_med[$n]=$(bench_median ${kube_runs[$n]:-0})
    # shellcheck disable=SC2086
    kube_p99_med[$n]=$(bench_median ${kube_p99[$n]:-0})
done
# the best peer (the reference is the yardstick, not a peer)
best_wrk=- best_kube=- best_wrk_name=- best_kube_name=-
for n in "${names[@]}"; do
    case $n in agent | ref) continue ;; esac
    if [ "$best_wrk" = - ] || awk -v a="${wrk_med[$n]}" -v b="$best_wrk" 'BEGIN { exit !(a > b) }'; then
        best_wrk=${wrk_med[$n]} best_wrk_name=$n
    fi
    if [ "$best_kube" = - ] || awk -v a="${kube_med[$n]}" -v b="$best_kube" 'BEGIN { exit !(a > b) }'; then
        best_kube=${kube_med[$n]} best_kube_name=$n
    fi
done

bench_table_begin "connection per probe, GET /readyz (median of $rounds; wrk -t1 -c50 -H 'Connection: close' -d${DUR:-5s}; kubelet-like client ${kdur}s)"
for n in "${names[@]}"; do
    [ "$n" = agent ] && continue
    bench_row "wrk close req/s vs $n" "" "${wrk_med[agent]}" "${wrk_med[$n]}" info
done
bench_row "wrk close vs best ($best_wrk_name)" "" "${wrk_med[agent]}" "$best_wrk" ratio_ge 1.05
for n in "${names[@]}"; do
    [ "$n" = agent ] && continue
    bench_row "kubelet probes/s vs $n" "" "${kube_med[agent]}" "${kube_med[$n]}" info
done
bench_row "kubelet vs best ($best_kube_name)" "" "${kube_med[agent]}" "$best_kube" ratio_ge 1.05
bench_row "kubelet p99 vs ref" us "${kube_p99_med[agent]}" "${kube_p99_med[ref]}" info

stop_args=()
for k in "${!names[@]}"; do stop_args+=("${pids[$k]}" "${names[$k]}"); done
bench_stop "${stop_args[@]}"
bench_finish
