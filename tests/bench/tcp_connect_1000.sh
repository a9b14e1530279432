#!/usr/bin/env bash
# tcp_connect_1000.sh: 1,000 checks, each a TCP connect + close to a local
# server (health.checks.tcp), started together; how long until all are done.
# The agent binary runs in script-runner mode (`healthagent bench.lua`): the
# script loads one generation of 1,000 checks with autorun, so every check
# starts on the same loop turn, then polls (1 ms) until each has run once.
# Rounds: $ROUNDS (default 3) after one warm-up; the best and the worst are
# reported, with the median connect time the checks measured themselves.
# The server: the reference server (ha_ref_server, libuv, listen backlog 1024),
# or with TCP_SERVER=harness the harness's HTTP upstream (Node, backlog 511:
# 1,000 SYNs at once can overflow its accept queue, and a dropped SYN costs a
# 1 s retransmit, which then shows here as a ~1 s round).
# Round 0 is a warm-up (libuv's first stream takes a spare /dev/null fd).
# Target: all 1,000 done in under 1 s.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl

rounds=${ROUNDS:-3}
if [ "${TCP_SERVER:-ref}" = harness ]; then
    [ -f "${HA_HARNESS_DIR:-}/env.lua" ] || { bench_fail "TCP_SERVER=harness needs HA_HARNESS_DIR/env.lua"; bench_finish; }
    port=$(sed -n 's/^ *HA_HTTP_PORT = \([0-9]*\),$/\1/p' "$HA_HARNESS_DIR/env.lua")
    server="harness HTTP upstream (node) on 127.0.0.1:$port"
else
    bench_port; port=$PORT
    bench_start_ref "$port" || bench_finish
    server="reference server on 127.0.0.1:$port"
fi
bench_log "server: $server"
[ "$HA_BIN" = ref ] && { bench_log "HA_BIN=ref: nothing to measure here (runner mode needs the agent)"; bench_finish; }

cat >"$BENCH_TMP/bench.lua" <<'EOF'
-- 1,000 health.checks.tcp started together; prints one line per round:
--   ROUND <n> total_ms <ms> load_ms <ms> up <n> median_connect_ms <ms> max_connect_ms <ms>
local testing = require "health.testing"
local port, rounds, n = tonumber(arg[1]), tonumber(arg[2]), 1000
local src, names = {}, {}
for i = 1, n do
  names[i] = "c" .. i
  src[i] = ('health.checks.tcp { name = "c%d", host = "127.0.0.1", port = %d, timeout = "5s" }'):format(i, port)
end
src = table.concat(src, "\n")

local pid = io.open("/proc/self/stat"):read("n")
local function fds() -- os.execute waits for the child: no pipe of ours is open while it counts
  local tmp = os.tmpname()
  os.execute(("ls /proc/%d/fd | wc -l > %s"):format(pid, tmp))
  local f = io.open(tmp)
  local k = f:read("n")
  f:close()
  os.remove(tmp)
  return k
end

for round = 0, rounds do
  collectgarbage()
  local before = fds()
  local t0 = health.now()
  local g = assert(testing.load({ ["tcp.lua"] = src }, { autorun = true }))
  local t1 = health.now()
  local done
  repeat
    health.sleep(0.001)
    done = 0
    for i = 1, n do
      if g:state(names[i]).runs > 0 then done = done + 1 end
    end
  until done == n or health.now() - t0 > 30
  local t2 = health.now()
  local up, ms = 0, {}
  for i = 1, n do
    local s = g:state(names[i])
    if s.status == "UP" then up = up + 1 end
    ms[#ms + 1] = tonumber(s.details and s.details:match('"connect_ms":(%d+)')) or 0
  end
  table.sort(ms)
  g:close()
  collectgarbage()
  health.sleep(0.05)
  local leaked = fds() - before
  print(("ROUND %d total_ms %.0f load_ms %.0f up %d median_connect_ms %d max_connect_ms %d leaked_fds %d handles %d")
    :format(round, (t2 - t0) * 1000, (t1 - t0) * 1000, up, ms[n // 2], ms[n], leaked, testing.handles()))
end
EOF

# Runner mode logs each status change: keep them out of the figures.
if ! "$HA_BIN" "$BENCH_TMP/bench.lua" "$port" "$rounds" >"$BENCH_TMP/out.txt" 2>"$BENCH_TMP/runner.log"; then
    bench_fail "runner exited with status $?"
    tail -n 20 "$BENCH_TMP/runner.log" | sed 's/^/  runner| /' >&2
    bench_finish
fi
sed 's/^/# /' "$BENCH_TMP/out.txt" >&2
measured=$(grep -v '^ROUND 0 ' "$BENCH_TMP/out.txt")
[ -n "$measured" ] || { bench_fail "no rounds measured"; bench_finish; }
if grep -qv ' up 1000 ' <<<"$measured"; then
    bench_fail "not every check was UP in every round"
fi
if grep -qv ' leaked_fds 0 handles 0$' <<<"$measured"; then
    bench_fail "file descriptors or handles left behind"
fi
best=$(awk '{ print $4 }' <<<"$measured" | sort -n | head -n 1)
worst=$(awk '{ print $4 }' <<<"$measured" | sort -n | tail -n 1)
median_connect=$(awk '{ print $10 }' <<<"$measured" | sort -n | head -n 1)
max_connect=$(awk '{ print $12 }' <<<"$measured" | sort -n | tail -n 1)

bench_table_begin "1,000 TCP connect + close checks started together ($rounds rounds; server: $server)"
bench_row "all done, best round" ms "$best" - lt 1000
bench_row "all done, worst round" ms "$worst" - lt 1000
bench_row "median connect (best round)" ms "$median_connect" - info
bench_row "slowest connect" ms "$max_connect" - info
bench_finish
