# shellcheck shell=bash disable=SC2059  # BENCH_FMT: one format for header and rows
# tests/bench/lib.sh: helpers shared by the benchmark scripts. Source it; do not run it.
#
# Environment (all optional):
#   HA_BIN     agent binary (default build/healthagent, relative to the repo root).
#              HA_BIN=ref runs the reference server in the agent's place: a self-test
#              of the scripts that needs no agent (it ignores --scripts).
#   HA_ARGS    extra arguments put before the agent's own (e.g. "--config my.lua").
#   REF_BIN    reference server (default build/ha_ref_server; when missing or older
#              than ref_server.c it is compiled with cc into build-bench/ha_ref_server).
#   DUR        wrk duration (default 5s).        N   h2load request count (default 1000000).
#   ROUNDS     cached_readyz.sh: alternating rounds, best one reported (default 2).
#   P99_DUR    p99_sleepers.sh: wrk duration (default 10s).
#   BENCH_WAIT_QUIET  seconds to wait, before starting, for an idle host (default 0).
#   BENCH_SUMMARY  file that collects every table row as TSV (run_all.sh sets it).
#
# shellcheck disable=SC2034  # PORT, REF_PID, HA_PID...: results read by the scripts
# Conventions: functions report through globals (no subshells, so background PIDs
# stay ours); a broken run (server does not start, non-2xx answers, failed requests)
# calls bench_fail, which makes bench_finish exit 1. A missed target is not a failure.

BENCH_NAME=$(basename "$0" .sh)
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_ROOT=$(cd "$BENCH_DIR/../.." && pwd)
BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ha-bench.XXXXXX")
BENCH_FAILED=0
BENCH_PIDS=()          # every server this script started and has not stopped yet
# Placement: with 2 or more CPUs every server (the agent with all its threads)
# runs on CPU 0 and every load generator on CPU 1, so both servers of a
# comparison get the same single CPU; unpinned, the scheduler's placement moved
# wrk ratios by +-20 % between runs. BENCH_PIN=0 turns this off.
BENCH_SERVER_CPU=()
BENCH_LOAD_CPU=()
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    BENCH_SERVER_CPU=(taskset -c 0)
    BENCH_LOAD_CPU=(taskset -c 1)
fi

HA_BIN=${HA_BIN:-build/healthagent}
case $HA_BIN in ref | /*) ;; *) HA_BIN=$BENCH_ROOT/$HA_BIN ;; esac
REF_BIN=${REF_BIN:-}

bench_log()  { printf '# %s\n' "$*" >&2; }
bench_fail() { printf 'BENCH FAILURE: %s\n' "$*" >&2; BENCH_FAILED=1; }

# Stops whatever is still running, removes the scratch directory.
bench__cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${BENCH_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    rm -rf "$BENCH_TMP"
}
trap bench__cleanup EXIT
trap 'exit 130' INT TERM

# bench_finish: last call of every script. Exits 1 if anything was broken.
bench_finish() {
    if [ "$BENCH_FAILED" -ne 0 ]; then
        echo "RESULT: broken (see BENCH FAILURE lines above)"
        exit 1
    fi
    exit 0
}

# bench_require_tools: fails the script at once when a needed tool is missing; then
# waits for a quiet host if BENCH_WAIT_QUIET asks for it.
bench_require_tools() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || { bench_fail "'$t' not found in PATH"; bench_finish; }
    done
    bench_wait_quiet
}

# bench_ref_bin: sets REF_BIN to a runnable reference server, compiling it if need be.
bench_ref_bin() {
    local out=$BENCH_ROOT/build-bench/ha_ref_server src=$BENCH_DIR/ref_server.c
    if [ -n "$REF_BIN" ]; then
        [ -x "$REF_BIN" ] || { bench_fail "REF_BIN=$REF_BIN is not executable"; bench_finish; }
        return 0
    fi
    if [ -x "$BENCH_ROOT/build/ha_ref_server" ] && [ ! "$src" -nt "$BENCH_ROOT/build/ha_ref_server" ]; then
        REF_BIN=$BENCH_ROOT/build/ha_ref_server
        return 0
    fi
    if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
        bench_log "compiling $out"
        mkdir -p "${out%/*}"
        # shellcheck disable=SC2046  # pkg-config output is a word list on purpose
        ${CC:-cc} -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -DH2O_USE_LIBUV=1 \
            -o "$out" "$src" $(pkg-config --cflags --libs libh2o libuv openssl) ||
            { bench_fail "cannot compile $src"; bench_finish; }
    fi
    REF_BIN=$out
}

# bench_port: sets PORT to a free TCP port on 127.0.0.1. Drawn from 12000-24999: below
# the kernel's ephemeral range (wrk's and h2load's client ports never land there) and
# the test harness's default base (25900); ss confirms no socket uses it.
bench_port() {
    local p _
    for _ in $(seq 1 50); do
        p=$((12000 + RANDOM % 13000))
        if command -v ss >/dev/null; then
            [ -z "$(ss -Htan "sport = :$p" 2>/dev/null)" ] || continue
        elif (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            continue
        fi
        PORT=$p
        return 0
    done
    bench_fail "no free port found"
    bench_finish
}

# bench_start NAME PORT CMD...: runs CMD from the repo root in the background (output
# in $BENCH_TMP/NAME.log) and polls http://127.0.0.1:PORT/ with curl until anything
# answers, 10 s at most.
# Sets SERVER_PID. On failure prints the log tail, calls bench_fail and returns 1.
bench_start() {
    local name=$1 port=$2 _
    shift 2
    (cd "$BENCH_ROOT" && exec "${BENCH_SERVER_CPU[@]}" "$@") >"$BENCH_TMP/$name.log" 2>&1 &
    SERVER_PID=$!
    BENCH_PIDS+=("$SERVER_PID")
    for _ in $(seq 1 100); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID"
            bench_fail "$name exited with status $? before listening on $port: $*"
            tail -n 20 "$BENCH_TMP/$name.log" | sed "s/^/  $name| /" >&2
            bench__forget "$SERVER_PID"
            return 1
        fi
        if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
            bench_log "$name (pid $SERVER_PID) listening on 127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    bench_fail "$name did not answer on 127.0.0.1:$port within 10 s: $*"
    tail -n 20 "$BENCH_TMP/$name.log" | sed "s/^/  $name| /" >&2
    return 1
}

bench__forget() {
    local keep=() p
    for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    BENCH_PIDS=("${keep[@]}")
}

# bench_start_ref PORT: starts the reference server. Sets REF_PID.
bench_start_ref() {
    bench_ref_bin
    bench_start ref "$1" "$REF_BIN" "$1" || return 1
    REF_PID=$SERVER_PID
}

# bench_start_agent PORT [ARGS...]: starts $HA_BIN ARGS (from the repo root). Sets HA_PID.
# With HA_BIN=ref the reference server stands in for the agent.
bench_start_agent() {
    local port=$1
    shift
    if [ "$HA_BIN" = ref ]; then
        bench_ref_bin
        bench_log "HA_BIN=ref: self-test, the reference server plays the agent (args ignored: $*)"
        bench_start agent "$port" "$REF_BIN" "$port" || return 1
    else
        [ -x "$HA_BIN" ] || { bench_fail "agent binary $HA_BIN not found (build it, or set HA_BIN)"; return 1; }
        # shellcheck disable=SC2086  # HA_ARGS is a word list on purpose
        bench_start agent "$port" "$HA_BIN" ${HA_ARGS:-} "$@" || return 1
    fi
    HA_PID=$SERVER_PID
}

# bench_stop PID NAME [PID NAME...]: SIGTERM to all, then waits for each; SIGKILL after
# 20 s (the agent keeps answering for its shutdown_delay, 5 s by default, then has
# shutdown_timeout to finish). A server that needs the kill, died before, or exits
# non-zero is reported as broken.
bench_stop() {
    local pids=() names=() pid i rc k
    while [ $# -ge 2 ]; do
        pids+=("$1") names+=("$2")
        shift 2
    done
    for k in "${!pids[@]}"; do
        if ! kill -TERM "${pids[$k]}" 2>/dev/null; then
            bench_fail "${names[$k]} (pid ${pids[$k]}) died during the run"
            tail -n 20 "$BENCH_TMP/${names[$k]}.log" | sed "s/^/  ${names[$k]}| /" >&2
        fi
    done
    for k in "${!pids[@]}"; do
        pid=${pids[$k]}
        for i in $(seq 1 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid"
            bench_fail "${names[$k]} (pid $pid) still running 20 s after SIGTERM; killed"
        fi
        wait "$pid"
        rc=$?
        bench__forget "$pid"
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 143 ]; then
            bench_fail "${names[$k]} exited with status $rc after SIGTERM"
            tail -n 5 "$BENCH_TMP/${names[$k]}.log" | sed "s/^/  ${names[$k]}| /" >&2
        fi
    done
}

# bench_wait_status URL CODE [SECONDS]: polls URL until it answers CODE (default 10 s).
# Returns 1 (without failing the run) if it never does; LAST_CODE holds the last answer.
bench_wait_status() {
    local url=$1 want=$2 secs=${3:-10} _
    for _ in $(seq 1 $((secs * 10))); do
        LAST_CODE=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url")
        [ "$LAST_CODE" = "$want" ] && return 0
        sleep 0.1
    done
    return 1
}

# bench_start_pair FIXTURE: starts the reference server and the agent on
# tests/bench/fixtures/FIXTURE and waits until the agent's /readyz answers 200.
# Sets ref_port, ha_port, ref_url and ha_url (the two /readyz URLs). Ends the
# run (bench_finish) if either does not come up.
bench_start_pair() {
    bench_port; ref_port=$PORT
    bench_start_ref "$ref_port" || bench_finish
    bench_port; ha_port=$PORT
    bench_start_agent "$ha_port" --scripts "$BENCH_DIR/fixtures/$1" --listen "127.0.0.1:$ha_port" || bench_finish
    ref_url=http://127.0.0.1:$ref_port/readyz
    ha_url=http://127.0.0.1:$ha_port/readyz
    if ! bench_wait_status "$ha_url" 200 10; then
        bench_fail "agent /readyz never answered 200 within 10 s (last: $LAST_CODE)"
        bench_finish
    fi
}

# bench_wait_decided PORT TRIES: polls the agent's /livez every 0.1 s, at most
# TRIES times, until no check in it is INIT. Sets LIVEZ to the last body;
# returns 1 if INIT checks remain.
bench_wait_decided() {
    local _
    LIVEZ=''
    for _ in $(seq 1 "$2"); do
        LIVEZ=$(curl -s --max-time 1 "http://127.0.0.1:$1/livez")
        case $LIVEZ in *'"INIT"'* | '') sleep 0.1 ;; *) return 0 ;; esac
    done
    return 1
}

# bench_rss PID: sets RSS_KIB, HWM_KIB, and the split of RSS into ANON_KIB (heap,
# stacks) and FILE_KIB (mapped binaries and shared libraries) from /proc/PID/status;
# PSS_KIB (shared pages divided among the processes mapping them) from smaps_rollup.
bench_rss() {
    RSS_KIB=$(awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null)
    HWM_KIB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null)
    ANON_KIB=$(awk '/^RssAnon:/ { print $2 }' "/proc/$1/status" 2>/dev/null)
    FILE_KIB=$(awk '/^RssFile:/ { print $2 }' "/proc/$1/status" 2>/dev/null)
    PSS_KIB=$(awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null)
    if [ -z "$RSS_KIB" ] || [ -z "$HWM_KIB" ]; then
        bench_fail "cannot read /proc/$1/status"
        RSS_KIB=0 HWM_KIB=0
        return 1
    fi
}

# bench_mib KIB: prints KiB as MiB with two decimals.
bench_mib() { awk -v k="$1" 'BEGIN { printf "%.2f", k / 1024 }'; }

# bench_wrk NAME URL [DURATION [HEADER]]: wrk -t1 -c50 --latency, with the request
# header HEADER when given (e.g. "Connection: close"). Sets WRK_RPS (req/s) and
# WRK_P99_MS. Non-2xx answers, connect errors, timeouts or zero requests fail the run.
bench_wrk() {
    local name=$1 url=$2 dur=${3:-${DUR:-5s}} out hdr=()
    [ -z "${4:-}" ] || hdr=(-H "$4")
    out=$BENCH_TMP/wrk.$name.$RANDOM.txt
    "${BENCH_LOAD_CPU[@]}" wrk -t1 -c50 -d"$dur" --latency "${hdr[@]}" "$url" >"$out" 2>&1
    WRK_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    WRK_REQUESTS=$(awk '/ requests in / { print $1 }' "$out")
    WRK_P99_MS=$(awk '$1 == "99%" {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000
        printf "%.3f", v }' "$out")
    local non2xx sockerr
    non2xx=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' "$out")
    sockerr=$(awk '/Socket errors:/ { gsub(/,/, ""); print "connect=" $4, "timeout=" $10 }' "$out")
    bench_log "wrk $name $url: ${WRK_RPS:-?} req/s, p99 ${WRK_P99_MS:-?} ms${non2xx:+, non-2xx $non2xx}${sockerr:+, socket errors $sockerr}"
    if [ -z "$WRK_RPS" ] || [ -z "$WRK_P99_MS" ]; then
        bench_fail "wrk against $name gave no figures:"; sed 's/^/  wrk| /' "$out" >&2
        WRK_RPS=0 WRK_P99_MS=0
        return 1
    fi
    if [ -n "$non2xx" ] && [ "$non2xx" != 0 ]; then
        bench_fail "$name answered $non2xx non-2xx responses to wrk ($url)"
        return 1
    fi
    if [ -n "$sockerr" ] && [ "$sockerr" != "connect=0 timeout=0" ]; then
        bench_fail "wrk against $name: socket errors $sockerr ($url)"
        return 1
    fi
    awk -v r="$WRK_RPS" 'BEGIN { exit !(r > 0) }' || { bench_fail "wrk against $name: 0 req/s"; return 1; }
}

# bench_h2load NAME URL: h2load -c50 -m10 -n$N (h2c prior knowledge for http:// URLs).
# Sets H2_RPS. Any failed, errored or timed-out request, or any non-2xx status, fails the run.
bench_h2load() {
    local name=$1 url=$2 n=${N:-1000000} out
    out=$BENCH_TMP/h2load.$name.$RANDOM.txt
    "${BENCH_LOAD_CPU[@]}" h2load -c50 -m10 -n"$n" "$url" >"$out" 2>&1
    H2_RPS=$(awk '/^finished in/ { print $4 }' "$out")
    local proto reqs codes
    proto=$(awk '/^Application protocol:/ { print $3 }' "$out")
    # requests: T total, S started, D done, OK succeeded, F failed, E errored, TO timeout
    reqs=$(awk '/^requests:/ { print $2, $8, $10, $12, $14 }' "$out")
    codes=$(awk '/^status codes:/ { print $3, $5, $7, $9 }' "$out")
    bench_log "h2load $name $url ($proto): ${H2_RPS:-?} req/s; total/succeeded/failed/errored/timeout: $reqs; 2xx/3xx/4xx/5xx: $codes"
    if [ -z "$H2_RPS" ] || [ -z "$reqs" ]; then
        bench_fail "h2load against $name gave no figures:"; sed 's/^/  h2load| /' "$out" >&2
        H2_RPS=0
        return 1
    fi
    [ "$proto" = h2c ] || bench_log "note: h2load negotiated '$proto', not h2c"
    # shellcheck disable=SC2086  # split the figures into $1..$5
    set -- $reqs
    if [ "$1" != "$2" ] || [ "$3" != 0 ] || [ "$4" != 0 ] || [ "$5" != 0 ]; then
        bench_fail "h2load against $name: $2 of $1 succeeded, $3 failed, $4 errored, $5 timed out ($url)"
        return 1
    fi
    # shellcheck disable=SC2086
    set -- $codes
    if [ "${1:-0}" != "$n" ]; then
        bench_fail "h2load against $name: only ${1:-0} of $n answers were 2xx (3xx/4xx/5xx: $2/$3/$4)"
        return 1
    fi
    H2_RPS=$(awk -v r="$H2_RPS" 'BEGIN { printf "%.2f", r }')
}

# bench_median V...: prints the median of the numbers (the mean of the middle two
# for an even count).
bench_median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_pair_order ROUND A B: prints "A B" in an odd round and "B A" in an even
# one, so that neither side of a pair always has the warmer (or colder) turn.
bench_pair_order() { if [ $(($1 % 2)) = 1 ]; then echo "$2 $3"; else echo "$3 $2"; fi; }

# bench_paired_ratio "A1 A2 ..." "R1 R2 ...": the median of A_i / R_i, each pair
# measured back to back in one round, to 2 decimals. On a host whose speed drifts
# by 10-20 % within a minute this says more than the ratio of two medians: the
# drift between rounds cancels out of each pair. Prints 0 if the lists are empty
# or of different lengths.
bench_paired_ratio() {
    local -a pa pr q=()
    local i
    read -r -a pa <<<"$1"
    read -r -a pr <<<"$2"
    if [ ${#pa[@]} -eq 0 ] || [ ${#pa[@]} -ne ${#pr[@]} ]; then
        echo 0
        return
    fi
    for i in "${!pa[@]}"; do
        q+=("$(awk -v x="${pa[$i]}" -v y="${pr[$i]}" 'BEGIN { if (y + 0 > 0) printf "%.4f", x / y; else print 0 }')")
    done
    awk -v m="$(bench_median "${q[@]}")" 'BEGIN { printf "%.2f", m }'
}

# bench_cpu_ticks PID: CPU time (user + system, in clock ticks) used so far by PID,
# every thread of it, and every process under it (nginx's worker, the h2o server's
# children). Prints one number; 0 for a PID that is gone.
bench_cpu_ticks() {
    local p kids t=0 k
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        # fields 14 and 15 of stat, counted after the ")" that ends the command name
        t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
        kids=$(cat /proc/"$p"/task/*/children 2>/dev/null)
        # shellcheck disable=SC2086  # the children are a word list
        [ -z "$kids" ] || { k=$(bench_cpu_ticks $kids); t=$((t + k)); }
    done
    echo "$t"
}

# bench_cpu_busy_ticks N: busy (not idle, not iowait) clock ticks of CPU N so far.
bench_cpu_busy_ticks() {
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}

# bench_go_build NAME SOURCE: builds a Go program of tests/bench/peers (standard library
# only) into build-bench/NAME when missing or older than SOURCE; sets GO_BIN to it.
bench_go_build() {
    local out=$BENCH_ROOT/build-bench/$1 src=$BENCH_DIR/peers/$2
    if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
        bench_log "compiling $out"
        mkdir -p "${out%/*}"
        GOCACHE=$BENCH_ROOT/build-bench/gocache GO111MODULE=off go build -o "$out" "$src" ||
            { bench_fail "cannot compile $src"; bench_finish; }
    fi
    GO_BIN=$out
}

# bench_spread A B: prints how much A and B differ, in percent of the larger.
bench_spread() { awk -v a="$1" -v b="$2" 'BEGIN { m = a > b ? a : b; d = a > b ? a - b : b - a; printf "%.0f%%", (m > 0 ? 100 * d / m : 0) }'; }

# bench_max A B / bench_min A B: prints the larger / smaller of two numbers.
bench_max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 >= b + 0) ? a : b }'; }
bench_min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 <= b + 0) ? a : b }'; }

# Table. Columns: metric | healthagent | reference | ratio (agent/ref) | target | verdict.
BENCH_FMT='%-28s | %14s | %14s | %6s | %-14s | %s\n'

# bench_cpu_busy: prints the share of all CPUs that was busy over one second.
bench_cpu_busy() {
    local a b
    a=$(head -n 1 /proc/stat)
    sleep 1
    b=$(head -n 1 /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN {
        n = split(a, x); split(b, y)
        for (i = 2; i <= n; i++) { d = y[i] - x[i]; t += d; if (i == 5 || i == 6) idle += d }
        printf "%.0f%%", (t > 0 ? 100 * (t - idle) / t : 0) }'
}

# bench_wait_quiet: with BENCH_WAIT_QUIET=S, waits up to S seconds for a second in
# which less than 25% of the CPUs were busy (other builds and tests finishing).
bench_wait_quiet() {
    local deadline=$((SECONDS + ${BENCH_WAIT_QUIET:-0})) busy
    while [ "$SECONDS" -lt "$deadline" ]; do
        busy=$(bench_cpu_busy)
        [ "${busy%\%}" -lt 25 ] && return 0
        bench_log "host busy ($busy of the CPU); waiting for a quiet second"
    done
    return 0
}

# bench_table_begin TITLE
bench_table_begin() {
    printf '\n== %s ==\n' "$1"
    printf 'host: %s CPUs, load average %s, %s of the CPU busy in the last second' \
        "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(bench_cpu_busy)"
    printf ' (other work on the host skews both columns)\n'
    printf "$BENCH_FMT" metric healthagent reference ratio target verdict
    printf '%s\n' "-----------------------------+----------------+----------------+--------+----------------+--------"
}

# bench_row METRIC UNIT AGENT REF RULE [LIMIT [RATIO]]
#   RULE ratio_ge: ok when AGENT/REF >= LIMIT (higher is better: throughput);
#                  with RATIO (bench_paired_ratio), RATIO is shown and judged instead
#                  of AGENT/REF, which are then the sides' medians
#   RULE le | lt:  ok when AGENT <= LIMIT | < LIMIT, in UNIT (absolute budget)
#   RULE info:     no target
# AGENT may be "-" when the agent side did not run (verdict n/a).
bench_row() {
    local metric=$1 unit=$2 agent=$3 ref=$4 rule=$5 limit=${6:-} ratio=${7:--} target=- verdict=-
    if [ -z "${7:-}" ] && [ "$agent" != - ] && [ "$ref" != - ]; then
        ratio=$(awk -v a="$agent" -v r="$ref" 'BEGIN { if (r + 0 == 0) print "-"; else printf "%.2f", a / r }')
    fi
    case $rule in
    ratio_ge) target=">= ${limit}x ref" ;;
    le) target="<= $limit $unit" ;;
    lt) target="< $limit $unit" ;;
    esac
    if [ "$rule" != info ]; then
        if [ "$agent" = - ]; then
            verdict=n/a
        elif awk -v a="$agent" -v r="$ref" -v x="$limit" -v rule="$rule" -v q="${7:-}" 'BEGIN {
            if (rule == "ratio_ge" && q != "") ok = (q + 0 >= x)
            else if (rule == "ratio_ge") ok = (r > 0 && a / r >= x)
            else if (rule == "le") ok = (a <= x)
            else ok = (a < x)
            exit !ok }'; then
            verdict=ok
        else
            verdict=MISSED
        fi
    fi
    local a=$agent r=$ref
    if [ -n "$unit" ]; then
        [ "$a" = - ] || a="$a $unit"
        [ "$r" = - ] || r="$r $unit"
    fi
    printf "$BENCH_FMT" "$metric" "$a" "$r" "$ratio" "$target" "$verdict"
    if [ -n "${BENCH_SUMMARY:-}" ]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$BENCH_NAME" "$metric" "$a" "$r" "$ratio" "$target" "$verdict" >>"$BENCH_SUMMARY"
    fi
}
