#!/usr/bin/env bash
# checks_per_second.sh: how many trivial Lua checks the engine thread runs a second.
#
# Runner mode (`healthagent bench.lua`: the engine loop, no HTTP front) with a
# check `run = function() return true end` loaded through health.testing:
#   (a) one task calls g:run("t1") in a loop: each call starts the check as a task
#       (coroutine, deadline timer, result record) and yields until it is done;
#   (b) $K tasks (testing.spawn, default 100) each call g:run on a check of its own
#       in a loop, all at once; then h:wait() on each.
# Each loop runs $CPS_SECS s (default 1) in batches of 1,000 calls, $ROUNDS times
# (default 3); the best round is reported, also per CPU second (os.clock), which a
# busy host skews less. The reference column is the same loop calling a plain Lua
# function instead (no task, no check; for (b) the K loops one after the other), in
# the same process right after, so the ratio is the price of the check machinery.
# The script then proves every call ran the check once and nothing was left behind
# (runs counted, 0 tasks, 0 libuv handles).
#
# Agent mode (c): `healthagent --scripts fixtures/trivial`, 1,000 liveness checks on
# an interval (each run bumps a counter shared by the generation) and a `meter`
# check whose output is "<runs> <engine clock>". GET /livez/meter twice, $CPS_WINDOW
# apart (default 5 s): completed runs / elapsed engine time. Both numbers of one
# sample come from the same run on the engine thread, so the figure does not depend
# on when the front got the snapshot. Twice:
#   (c1) interval 100ms: 10,000 runs a second scheduled (the reference column); the
#        ratio says whether the engine keeps up (the interval counts from the end
#        of a run, and libuv timers have 1 ms steps, so a little under 1.0);
#   (c2) interval 1ms: 1,000,000 a second scheduled, far more than the engine can
#        run: its ceiling with timers, the snapshot published after each loop turn
#        and the front taking the snapshots in.
# Each reports the agent's CPU (whole process, front thread, engine and others, in %
# of one CPU) and the engine CPU time per completed run. /livez must be 200 (every
# check UP) at the end. Target: >= 10,000 runs/s in (a), (b) and (c2); (c1) >= 0.95
# of the schedule.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl

rounds=${ROUNDS:-3}
k=${K:-100}
secs=${CPS_SECS:-1}
window=${CPS_WINDOW:-5}
hz=$(getconf CLK_TCK)

# bench_row with an absolute "at least" rule, which lib.sh's bench_row lacks:
# row_ge METRIC AGENT REF LIMIT prints a row whose verdict is ok when AGENT >= LIMIT.
row_ge() {
    local metric=$1 agent=$2 ref=$3 limit=$4 ratio=- verdict
    if [ "$ref" != - ]; then
        ratio=$(awk -v a="$agent" -v r="$ref" 'BEGIN { if (r + 0 == 0) print "-"; else printf "%.2f", a / r }')
    fi
    if awk -v a="$agent" -v x="$limit" 'BEGIN { exit !(a >= x) }'; then verdict=ok; else verdict=MISSED; fi
    # shellcheck disable=SC2059  # BENCH_FMT: lib.sh's one format for header and rows
    printf "$BENCH_FMT" "$metric" "$agent" "$ref" "$ratio" ">= $limit" "$verdict"
    if [ -n "${BENCH_SUMMARY:-}" ]; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$BENCH_NAME" "$metric" "$agent" "$ref" "$ratio" ">= $limit" "$verdict" >>"$BENCH_SUMMARY"
    fi
}

# stat_ticks FILE: utime + stime (clock ticks) from a /proc/.../stat file.
stat_ticks() { sed 's/^.*) //' "$1" 2>/dev/null | awk '{ print $12 + $13 }'; }

# cpu_sample PID: sets CPU_ALL (ticks of the process) and CPU_MAIN (its main
# thread: the h2o front in the agent; the engine is another thread).
cpu_sample() {
    CPU_ALL=$(stat_ticks "/proc/$1/stat")
    CPU_MAIN=$(stat_ticks "/proc/$1/task/$1/stat")
}

# meter PORT: sets METER_RUNS and METER_T (engine seconds) from GET /livez/meter.
meter() {
    local body
    body=$(curl -s --max-time 2 "http://127.0.0.1:$1/livez/meter")
    read -r METER_RUNS METER_T < <(sed -n 's/.*"output":"\([0-9]*\) \([0-9.]*\)".*/\1 \2/p' <<<"$body")
    if [ -z "${METER_RUNS:-}" ] || [ -z "${METER_T:-}" ]; then
        bench_fail "no meter reading from /livez/meter: $body"
        METER_RUNS=0 METER_T=0
        return 1
    fi
}

# --- (a) and (b): runner mode ---------------------------------------------------
cat >"$BENCH_TMP/bench.lua" <<'EOF'
-- Prints, per round: ROUND <r> <what> <calls> <seconds> <cpu seconds>
-- what: seq_check seq_plain conc_check conc_plain. Then: CHECK runs <n> failed <n>
-- tasks <n> handles <n>, which the shell script verifies.
local testing = require "health.testing"
local k, secs, rounds = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
local BATCH = 1000

local src = {}
for i = 1, k do
  src[i] = ('health.check { name = "t%d", run = function() return true end }'):format(i)
end
local g = assert(testing.load({ ["trivial.lua"] = table.concat(src, "\n") }))
local names = {}
for i = 1, k do names[i] = "t" .. i end
local function plain() return true end
local failed = 0

-- The loop under test: batches of BATCH calls until the deadline. Returns calls.
local function loop_check(name, deadline)
  local n = 0
  repeat
    for _ = 1, BATCH do
      if g:run(name).result ~= "UP" then failed = failed + 1 end
    end
    n = n + BATCH
  until health.now() >= deadline
  return n
end
local function loop_plain(deadline)
  local n = 0
  repeat
    for _ = 1, BATCH do
      if plain() ~= true then failed = failed + 1 end
    end
    n = n + BATCH
  until health.now() >= deadline
  return n
end

local function timed(what, round, fn)
  collectgarbage()
  local t0, c0 = health.now(), os.clock()
  local n = fn(t0 + secs)
  print(("ROUND %d %s %d %.6f %.6f"):format(round, what, n, health.now() - t0, os.clock() - c0))
end

local expected = 0
for round = 1, rounds do
  timed("seq_check", round, function(deadline)
    local n = loop_check("t1", deadline)
    expected = expected + n
    return n
  end)
  timed("seq_plain", round, loop_plain)
  timed("conc_check", round, function(deadline)
    local hs = {}
    for i = 1, k do hs[i] = testing.spawn(loop_check, names[i], deadline) end
    local n = 0
    for i = 1, k do
      local ok, m = hs[i]:wait()
      assert(ok, m)
      n = n + m
      if i == 1 then expected = expected + m end
    end
    return n
  end)
  timed("conc_plain", round, function(deadline)
    -- the same K loops, one after the other, no tasks: one K-th of the time each
    local n, t0 = 0, health.now()
    for i = 1, k do n = n + loop_plain(t0 + (deadline - t0) * i / k) end
    return n
  end)
end
local runs = g:state("t1").runs
local tasks = g:tasks()
g:close()
collectgarbage()
health.sleep(0.01)
print(("CHECK runs %d expected %d failed %d tasks %d handles %d"):format(runs, expected, failed, tasks, testing.handles()))
EOF

if [ "$HA_BIN" = ref ]; then
    bench_log "HA_BIN=ref: runner mode and agent mode need the agent; nothing to measure"
    bench_finish
fi
[ -x "$HA_BIN" ] || { bench_fail "agent binary $HA_BIN not found (build it, or set HA_BIN)"; bench_finish; }
bench_log "runner: K=$k tasks, ${secs} s per loop, $rounds rounds"
if ! "$HA_BIN" "$BENCH_TMP/bench.lua" "$k" "$secs" "$rounds" >"$BENCH_TMP/runner.out" 2>"$BENCH_TMP/runner.log"; then
    bench_fail "runner exited with status $?"
    tail -n 20 "$BENCH_TMP/runner.log" | sed 's/^/  runner| /' >&2
    bench_finish
fi
sed 's/^/# /' "$BENCH_TMP/runner.out" >&2
# best(WHAT): the highest calls/s of WHAT over the rounds; best_cpu(WHAT): its CPU/wall.
best() { awk -v w="$1" '$1 == "ROUND" && $3 == w && $5 > 0 { r = $4 / $5; if (r > b) b = r } END { printf "%.0f", b }' "$BENCH_TMP/runner.out"; }
spread() { awk -v w="$1" '$1 == "ROUND" && $3 == w && $5 > 0 { r = $4 / $5; if (!n++ || r > hi) hi = r; if (n == 1 || r < lo) lo = r }
    END { printf "%.0f%%", (hi > 0 ? 100 * (hi - lo) / hi : 0) }' "$BENCH_TMP/runner.out"; }
cpu_of() { awk -v w="$1" '$1 == "ROUND" && $3 == w && $5 > 0 { r = $4 / $5; if (r > b) { b = r; c = 100 * $6 / $5 } } END { printf "%.0f", c }' "$BENCH_TMP/runner.out"; }
# best_cpu(WHAT): the highest calls per CPU second (os.clock) of WHAT over the rounds.
best_cpu() { awk -v w="$1" '$1 == "ROUND" && $3 == w && $6 > 0 { r = $4 / $6; if (r > b) b = r } END { printf "%.0f", b }' "$BENCH_TMP/runner.out"; }
# per_call RATE: microseconds per call.
per_call() { awk -v r="$1" 'BEGIN { printf "%.3f", (r > 0 ? 1e6 / r : 0) }'; }
read -r _ _ runs _ expected _ failed _ tasks _ handles < <(grep '^CHECK ' "$BENCH_TMP/runner.out")
if [ -z "${handles:-}" ]; then
    bench_fail "runner printed no CHECK line"
elif [ "$runs" != "$expected" ] || [ "$failed" != 0 ] || [ "$tasks" != 0 ] || [ "$handles" != 0 ]; then
    bench_fail "runner: t1 ran $runs times for $expected calls, $failed failed, $tasks tasks and $handles handles left"
fi
seq_check=$(best seq_check) seq_plain=$(best seq_plain)
conc_check=$(best conc_check) conc_plain=$(best conc_plain)
bench_log "round-to-round spread: (a) check $(spread seq_check), plain $(spread seq_plain); (b) check $(spread conc_check), plain $(spread conc_plain)"
bench_log "CPU/wall in the best rounds: (a) $(cpu_of seq_check)%, (b) $(cpu_of conc_check)% (near 100: the loop was busy, not waiting)"

# --- (c): agent mode --------------------------------------------------------------
printf 'return { shutdown_delay = "0s" }\n' >"$BENCH_TMP/agent.lua"

# agent_phase INTERVAL: one agent on fixtures/trivial; sets PH_RATE (runs/s), PH_CPU,
# PH_FRONT, PH_ENGINE (% of one CPU) and PH_US (engine CPU microseconds per run).
agent_phase() {
    local interval=$1 port n0 t0 a0 m0 code
    PH_RATE=0 PH_CPU=0 PH_FRONT=0 PH_ENGINE=0 PH_US=0
    export HA_BENCH_TRIVIAL_INTERVAL=$interval
    bench_port; port=$PORT
    bench_start_agent "$port" --config "$BENCH_TMP/agent.lua" --scripts "$BENCH_DIR/fixtures/trivial" \
        --listen "127.0.0.1:$port" || return 1
    if ! bench_wait_status "http://127.0.0.1:$port/livez" 200 10; then
        bench_fail "interval $interval: /livez never answered 200 within 10 s (last: $LAST_CODE)"
        bench_stop "$HA_PID" agent
        return 1
    fi
    sleep 1
    meter "$port" || { bench_stop "$HA_PID" agent; return 1; }
    n0=$METER_RUNS t0=$METER_T
    cpu_sample "$HA_PID"; a0=$CPU_ALL m0=$CPU_MAIN
    sleep "$window"
    cpu_sample "$HA_PID"
    meter "$port" || { bench_stop "$HA_PID" agent; return 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/livez")
    [ "$code" = 200 ] || bench_fail "interval $interval: /livez answered $code after the window (a check is not UP)"
    bench_stop "$HA_PID" agent
    # The CPU window is the wall time between the samples; the meter window is engine
    # time between two meter runs (up to 0.5 s apart from it): shares use their own.
    read -r PH_RATE PH_CPU PH_FRONT PH_ENGINE PH_US < <(awk -v n0="$n0" -v n1="$METER_RUNS" -v t0="$t0" \
        -v t1="$METER_T" -v a="$((CPU_ALL - a0))" -v m="$((CPU_MAIN - m0))" -v w="$window" -v hz="$hz" 'BEGIN {
        rate = (t1 > t0) ? (n1 - n0) / (t1 - t0) : 0
        e = (a - m) / hz
        printf "%.0f %.1f %.1f %.1f %.1f\n", rate, 100 * a / hz / w, 100 * m / hz / w, 100 * e / w,
            (rate > 0 ? 1e6 * e / (rate * w) : 0) }')
    bench_log "interval $interval: $((METER_RUNS - n0)) runs in $(awk -v a="$t0" -v b="$METER_T" 'BEGIN { printf "%.3f", b - a }') s" \
        "= $PH_RATE runs/s; CPU ${PH_CPU}% (front ${PH_FRONT}%, engine+other ${PH_ENGINE}%), ${PH_US} us engine CPU per run"
    awk -v r="$PH_RATE" 'BEGIN { exit !(r > 0) }' || bench_fail "interval $interval: no runs counted"
}

agent_phase 100ms
c1_rate=$PH_RATE c1_cpu=$PH_CPU c1_front=$PH_FRONT c1_engine=$PH_ENGINE c1_us=$PH_US
agent_phase 1ms
c2_rate=$PH_RATE c2_cpu=$PH_CPU c2_front=$PH_FRONT c2_engine=$PH_ENGINE c2_us=$PH_US

bench_table_begin "trivial Lua checks run per second on the engine thread (reference: the same loop, plain function)"
row_ge "(a) runs/s, g:run, 1 task" "$seq_check" "$seq_plain" 10000
bench_row "(a) per CPU second" "" "$(best_cpu seq_check)" "$(best_cpu seq_plain)" info
bench_row "(a) time per call" us "$(per_call "$seq_check")" "$(per_call "$seq_plain")" info
row_ge "(b) runs/s, $k tasks" "$conc_check" "$conc_plain" 10000
bench_row "(b) per CPU second" "" "$(best_cpu conc_check)" "$(best_cpu conc_plain)" info
bench_row "(b) time per call" us "$(per_call "$conc_check")" "$(per_call "$conc_plain")" info
bench_row "(c1) runs/s, 1000 x 100ms" "" "$c1_rate" 10000 ratio_ge 0.95
bench_row "  CPU all/front/engine" % "$c1_cpu/$c1_front/$c1_engine" - info
bench_row "  engine CPU per run" us "$c1_us" - info
row_ge "(c2) runs/s, 1000 x 1ms" "$c2_rate" 1000000 10000
bench_row "  CPU all/front/engine" % "$c2_cpu/$c2_front/$c2_engine" - info
bench_row "  engine CPU per run" us "$c2_us" - info
bench_finish
