#!/usr/bin/env bash
# http_1000.sh: 1,000 HTTP checks against the local harness upstream, started
# together, in the agent's script-runner mode. Each round loads 1,000
# health.checks.http checks (GET /ok on HA_HTTP_PORT, a fresh connection
# each) into a generation and runs them all at once with health.testing.spawn
# (coroutine.wrap would not do: an API yield inside it suspends the whole
# calling task). Prints the time of each round and the process RSS before the
# first round, after the first and the last, and after closing the generations
# and a full collectgarbage; and the malloc heap actually in use after each
# round (mallinfo2, read by a tiny LD_PRELOAD shim built here with cc on
# SIGUSR1). Target: heap in use after round N - after round 1 < 256 KiB (no
# growth once the checks end). RSS itself rises over the first rounds and then
# flattens: glibc keeps the pages the 1,000 concurrent transfers freed (about
# 25 MiB at the peak) for reuse and does not hand them back; that is allocator
# retention, not memory held by the agent, which the heap figure shows.
#
# Needs the harness: HA_HARNESS_DIR pointing at a started one
# (tests/harness/servers.sh start DIR), or root so that this script starts
# one itself (HA_PORT_BASE, default 25900) and stops it at the end.
# ROUNDS (default 5), N (default 1000).
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

rounds=${ROUNDS:-5}
n=${N:-1000}
[ -x "$HA_BIN" ] || { bench_fail "no agent binary at $HA_BIN"; bench_finish; }

harness=${HA_HARNESS_DIR:-}
own_harness=0
if [ -z "$harness" ] || [ ! -f "$harness/env.lua" ]; then
    harness=$BENCH_TMP/harness
    bench_log "starting a harness in $harness"
    if ! HA_PORT_BASE=${HA_PORT_BASE:-25900} "$BENCH_ROOT/tests/harness/servers.sh" start "$harness" >&2; then
        bench_fail "harness did not start"
        bench_finish
    fi
    own_harness=1
fi

ulimit -n 65536 2>/dev/null || ulimit -n 4096
shim=
if command -v cc >/dev/null 2>&1; then
    cat >"$BENCH_TMP/heap.c" <<'C'
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
static void report(int sig)
{
    (void)sig; /* the runner is blocked in system() when this arrives */
    struct mallinfo2 m = mallinfo2();
    fprintf(stderr, "HEAP_KIB %zu\n", m.uordblks / 1024);
}
__attribute__((constructor)) static void init(void) { signal(SIGUSR1, report); }
C
    cc -shared -fPIC -O2 -o "$BENCH_TMP/heap.so" "$BENCH_TMP/heap.c" && shim=$BENCH_TMP/heap.so
fi
[ -n "$shim" ] || bench_log "no cc: heap-in-use figures skipped"
script=$BENCH_TMP/http_1000.lua
cat >"$script" <<'LUA'
local testing = require "health.testing"
local env = dofile(os.getenv("HA_HARNESS_DIR") .. "/env.lua")
local N, ROUNDS = tonumber(os.getenv("N")), tonumber(os.getenv("ROUNDS"))

local function rss_kib()
  for line in io.lines("/proc/self/status") do
    local v = line:match("^VmRSS:%s+(%d+)")
    if v then return tonumber(v) end
  end
end

local src = {}
for i = 1, N do
  src[#src + 1] = ("health.checks.http { name = 'h%d', timeout = 10, url = 'http://%s:%d/ok' }")
    :format(i, env.HA_HOST, env.HA_HTTP_PORT)
end
src = table.concat(src, "\n")

local PID
do
  local f = assert(io.open("/proc/self/stat"))
  PID = f:read("l"):match("^(%d+)")
  f:close()
end
local function heap_mark() -- the LD_PRELOAD shim prints HEAP_KIB on stderr
  if os.getenv("HEAP_SHIM") ~= "" then os.execute("kill -USR1 " .. PID) end
end

local function round()
  local g = assert(testing.load({ ["http.lua"] = src }))
  local t0 = health.now()
  local hs = {}
  for i = 1, N do
    hs[i] = testing.spawn(function() return g:run("h" .. i) end)
  end
  local up, other = 0, {}
  for i = 1, N do
    local ok, r = hs[i]:wait()
    if ok and r.status == "UP" then
      up = up + 1
    else
      local why = ok and tostring(r.output) or tostring(r)
      other[why] = (other[why] or 0) + 1
    end
  end
  local dt = health.now() - t0
  g:close()
  return dt, up, other
end

collectgarbage()
local before = rss_kib()
local after1
for k = 1, ROUNDS do
  local dt, up, other = round()
  local fails = {}
  for why, c in pairs(other) do fails[#fails + 1] = c .. " x " .. why end
  print(("round %d: %d checks in %.3f s, %d UP%s; RSS %d KiB"):format(k, N, dt, up,
    #fails > 0 and (", " .. table.concat(fails, ", ")) or "", rss_kib()))
  if k == 1 then after1 = rss_kib() end
  collectgarbage()
  heap_mark()
end
local after = rss_kib()
collectgarbage()
collectgarbage()
health.sleep(0.5) -- close callbacks, and the engine's trim 200 ms after a burst of runs ends
print(("RSS_KIB before=%d after_round1=%d after=%d after_gc=%d handles=%d")
  :format(before, after1, after, rss_kib(), testing.handles()))
LUA

out=$BENCH_TMP/out.txt
start=$(date +%s.%N)
if ! HA_HARNESS_DIR=$harness N=$n ROUNDS=$rounds HEAP_SHIM=$shim LD_PRELOAD=$shim \
    "$HA_BIN" "$script" >"$out" 2>"$BENCH_TMP/err.txt"; then
    cat "$out" >&2
    tail -n 20 "$BENCH_TMP/err.txt" >&2
    bench_fail "the runner script failed"
fi
total=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
grep '^round' "$out" >&2
read -r before after1 after after_gc handles < <(sed -n 's/^RSS_KIB before=\([0-9]*\) after_round1=\([0-9]*\) after=\([0-9]*\) after_gc=\([0-9]*\) handles=\([0-9]*\)$/\1 \2 \3 \4 \5/p' "$out")
if [ -z "${before:-}" ]; then
    bench_fail "no RSS figures in the output"
else
    first=$(sed -n 's/^round 1: [0-9]* checks in \([0-9.]*\) s.*/\1/p' "$out")
    best=$(sed -n 's/^round [0-9]*: [0-9]* checks in \([0-9.]*\) s.*/\1/p' "$out" | sort -n | head -n 1)
    grep -q "^round.* $n UP;" "$out" || bench_fail "some checks were not UP (see the rounds above)"
    [ "$handles" = 0 ] || bench_fail "$handles libuv handles left open"
    bench_table_begin "$n HTTP checks at once against the harness upstream, $rounds rounds (runner mode)"
    bench_row "round 1 total time" ms "$(awk -v s="$first" 'BEGIN { printf "%.0f", s * 1000 }')" - info
    bench_row "best round total time" ms "$(awk -v s="$best" 'BEGIN { printf "%.0f", s * 1000 }')" - info
    bench_row "RSS before" MiB "$(bench_mib "$before")" - info
    bench_row "RSS after round 1" MiB "$(bench_mib "$after1")" - info
    bench_row "RSS after round $rounds" MiB "$(bench_mib "$after")" - info
    bench_row "RSS after close + gc" MiB "$(bench_mib "$after_gc")" - info
    bench_row "RSS growth rounds 2..$rounds" MiB "$(bench_mib $((after - after1)))" - info
    heap1=$(grep -o '^HEAP_KIB [0-9]*' "$BENCH_TMP/err.txt" | head -n 1 | cut -d' ' -f2)
    heapn=$(grep -o '^HEAP_KIB [0-9]*' "$BENCH_TMP/err.txt" | tail -n 1 | cut -d' ' -f2)
    if [ -n "$heap1" ]; then
        bench_log "heap in use after each round (KiB): $(grep -o '^HEAP_KIB [0-9]*' "$BENCH_TMP/err.txt" | cut -d' ' -f2 | tr '\n' ' ')"
        bench_row "heap in use after round 1" KiB "$heap1" - info
        bench_row "heap in use after round $rounds" KiB "$heapn" - info
        bench_row "heap growth rounds 2..$rounds" KiB "$((heapn - heap1))" - lt 256
    fi
    bench_log "whole script: $total s (start-up and loading included)"
fi

if [ "$own_harness" = 1 ]; then
    "$BENCH_ROOT/tests/harness/servers.sh" stop "$harness" >&2 || true
fi
bench_finish
