#!/usr/bin/env bash
# Self-test of the harness: start everything, check each server and fixture
# with a real client, stop everything, check that nothing is left.
#
#   tests/harness/selftest.sh [DIR]
#
# DIR defaults to /tmp/ha-harness-selftest and the ports to HA_PORT_BASE=24800,
# so a harness started with the defaults (/tmp/ha-harness, 24700) is left alone.
# Prints "N passed, M failed" and exits non-zero if anything failed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${1:-/tmp/ha-harness-selftest}"
export HA_PORT_BASE="${HA_PORT_BASE:-24800}"
SERVERS="$HERE/servers.sh"
GRPC="node $HERE/grpc_client.js"
WORK="$(mktemp -d)"

passed=0
failed=0
ok()   { passed=$((passed + 1)); printf 'ok     %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAILED %s\n' "$1"; [ -z "${2:-}" ] || printf '       %s\n' "$2"; }
# check NAME EXPECTED ACTUAL
check() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "expected [$2], got [$3]"; fi; }

# now: seconds since the epoch, with milliseconds.
now() { date +%s.%N; }
# since T: milliseconds since T.
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%d", (b - a) * 1000 }'; }

cleanup() {
    "$SERVERS" stop "$DIR" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ start
t0="$(now)"
if ! "$SERVERS" start "$DIR"; then
    fail "servers.sh start"
    echo "$passed passed, $failed failed"
    exit 1
fi
ms="$(since "$t0")"
if [ "$ms" -lt 30000 ]; then ok "start-up took ${ms} ms"; else fail "start-up took ${ms} ms (limit 30000)"; fi

# shellcheck disable=SC1091
. "$DIR/env"
H="$HA_HOST"

# The slow fixture checks run in the background while the rest goes on;
# each writes "rc bytes ms" to a file read at the end.

# Full backlog: a new connect() must still hang after 5 s.
( s="$(now)"; timeout 5 bash -c "exec 3<>/dev/tcp/$H/$HA_BACKLOG_PORT" 2>/dev/null
  echo "$? 0 $(since "$s")" >"$WORK/backlog" ) &
# Silent: connects, then nothing arrives in 2 s.
( s="$(now)"; timeout 2 bash -c "exec 3<>/dev/tcp/$H/$HA_SILENT_PORT && cat <&3" >"$WORK/silent.out"
  echo "$? $(wc -c <"$WORK/silent.out") $(since "$s")" >"$WORK/silent" ) &
# Trickle: about one byte a second.
( s="$(now)"; timeout 3.5 bash -c "exec 3<>/dev/tcp/$H/$HA_TRICKLE_PORT && cat <&3" >"$WORK/trickle.out"
  echo "$? $(wc -c <"$WORK/trickle.out") $(since "$s")" >"$WORK/trickle" ) &

# ------------------------------------------------------------------ Redis
REDIS=(redis-cli -h "$H" -p "$HA_REDIS_PORT")
check "redis PING with the password" PONG \
    "$("${REDIS[@]}" -a "$HA_REDIS_PASSWORD" --no-auth-warning PING 2>&1)"
out="$("${REDIS[@]}" PING 2>&1)"
case "$out" in NOAUTH*) ok "redis PING without the password is refused" ;;
    *) fail "redis PING without the password is refused" "got [$out]" ;; esac

# ------------------------------------------------------------------ PostgreSQL
PSQL=("$HA_PG_BIN/psql" -h "$H" -p "$HA_PG_PORT" -U "$HA_PG_USER" -d "$HA_PG_DATABASE" -w -qAt)
check "postgres query with the password" "2|two" \
    "$(PGPASSWORD="$HA_PG_PASSWORD" "${PSQL[@]}" -c 'SELECT id, name FROM items WHERE id = 2' 2>&1)"
check "postgres stores a SCRAM verifier for ha" "SCRAM-SHA-256" \
    "$("$HA_PG_BIN/psql" -h "$HA_PG_SOCKET_DIR" -p "$HA_PG_PORT" -U postgres -d postgres -qAt \
        -c "SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname = 'ha'" 2>&1)"
out="$(PGPASSWORD=wrong "${PSQL[@]}" -c 'SELECT 1' 2>&1)"
case "$out" in *"password authentication failed"*) ok "postgres rejects a wrong password" ;;
    *) fail "postgres rejects a wrong password" "got [$out]" ;; esac
check "postgres listens on 127.0.0.1 only" "127.0.0.1:$HA_PG_PORT" \
    "$(ss -Htln "sport = :$HA_PG_PORT" | awk '{print $4}' | sort -u | tr '\n' ' ' | sed 's/ $//')"
check "postgres runs as hatest" hatest "$(ps -o user= -p "$(cat "$HA_PG_PID_FILE")" 2>&1)"

# ------------------------------------------------------------------ MariaDB
MYSQL=(mariadb --no-defaults -h "$H" -P "$HA_MARIADB_PORT" -u "$HA_MARIADB_USER" -D "$HA_MARIADB_DATABASE" -N -s)
check "mariadb query with the password over TCP" "2	two" \
    "$("${MYSQL[@]}" -p"$HA_MARIADB_PASSWORD" -e 'SELECT id, name FROM items WHERE id = 2' 2>&1)"
out="$("${MYSQL[@]}" -pwrong -e 'SELECT 1' 2>&1)"
case "$out" in *"Access denied"*) ok "mariadb rejects a wrong password" ;;
    *) fail "mariadb rejects a wrong password" "got [$out]" ;; esac
check "mariadb runs as hatest" hatest "$(ps -o user= -p "$(cat "$HA_MARIADB_PID_FILE")" 2>&1)"

# ------------------------------------------------------------------ HTTP/1.1
U="http://$H:$HA_HTTP_PORT"
check "http /ok" "200 ok" "$(curl -sS -w '%{http_code} ' -o "$WORK/b" "$U/ok" 2>&1)$(cat "$WORK/b")"
check "http /status/503" 503 "$(curl -sS -o /dev/null -w '%{http_code}' "$U/status/503" 2>&1)"
check "http /redirect is a 302 to /ok" "302 $U/ok" \
    "$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "$U/redirect" 2>&1)"
check "http /redirect followed" ok "$(curl -sS -L "$U/redirect" 2>&1)"
check "http /big is 10 MiB" 10485760 "$(curl -sS "$U/big" 2>/dev/null | wc -c)"
out="$(curl -sS -X PUT -H 'X-Probe: 42' --data-binary 'hello' "$U/echo?a=1" 2>&1)"
check "http /echo echoes method, header and body" "PUT 42 hello 1 1.1" \
    "$(node -e 'const j = JSON.parse(process.argv[1]); console.log(j.method, j.headers["x-probe"], j.body, j.query.a, j.httpVersion)' "$out" 2>&1)"
s="$(now)"; out="$(curl -sS "$U/slow?ms=400" 2>&1)"; ms="$(since "$s")"
if [ "$out" = slow ] && [ "$ms" -ge 400 ]; then ok "http /slow?ms=400 (${ms} ms)"; else fail "http /slow?ms=400" "got [$out] after $ms ms"; fi
check "http /chunked" "chunked 5" \
    "$(curl -sS -D "$WORK/h" "$U/chunked" 2>/dev/null | wc -l | sed 's/^/chunked /')"

# ------------------------------------------------------------------ HTTPS
check "https with --cacert (localhost)" "ok" "$(curl -sS --cacert "$HA_CA_FILE" "https://localhost:$HA_HTTPS_PORT/ok" 2>&1)"
check "https with --cacert (127.0.0.1)" "ok" "$(curl -sS --cacert "$HA_CA_FILE" "https://127.0.0.1:$HA_HTTPS_PORT/ok" 2>&1)"
check "https offers h2 by ALPN" "2" \
    "$(curl -sS --http2 --cacert "$HA_CA_FILE" -o /dev/null -w '%{http_version}' "https://localhost:$HA_HTTPS_PORT/ok" 2>&1)"
check "https offers http/1.1 by ALPN" "1.1" \
    "$(curl -sS --http1.1 --cacert "$HA_CA_FILE" -o /dev/null -w '%{http_version}' "https://localhost:$HA_HTTPS_PORT/ok" 2>&1)"
out="$(curl -sS "https://localhost:$HA_HTTPS_PORT/ok" 2>&1)"; rc=$?
check "https without the CA fails verification" "60" "$rc"
out="$(curl -sS --cacert "$HA_CA_FILE" "https://localhost:$HA_HTTPS_EXPIRED_PORT/ok" 2>&1)"; rc=$?
case "$rc $out" in "60 "*expired*) ok "expired https fails verification: expired" ;;
    *) fail "expired https fails verification: expired" "rc $rc: $out" ;; esac
check "expired https works with -k" ok "$(curl -sSk "https://localhost:$HA_HTTPS_EXPIRED_PORT/ok" 2>&1)"
check "expired certificate dates" "notAfter=Feb  1 00:00:00 2020 GMT" \
    "$(openssl x509 -in "$HA_EXPIRED_CERT_FILE" -noout -enddate 2>&1)"

# ------------------------------------------------------------------ h2c
check "h2c with prior knowledge" "2 ok" \
    "$(curl -sS --http2-prior-knowledge -w '%{http_version} ' -o "$WORK/b" "http://$H:$HA_H2C_PORT/ok" 2>&1)$(cat "$WORK/b")"
check "nghttp to h2c" "ok" "$(nghttp "http://$H:$HA_H2C_PORT/ok" 2>&1)"

# ------------------------------------------------------------------ gRPC
G="$H:$HA_GRPC_PORT"
check "grpc Check \"\"" SERVING "$($GRPC "$G" "" 2>&1)"
check "grpc Check app" SERVING "$($GRPC "$G" app 2>&1)"
check "grpc Check unknown service" "error NOT_FOUND" "$($GRPC "$G" nosuch 2>&1 | cut -d: -f1)"
check "grpc over TLS" SERVING "$($GRPC --ca "$HA_CA_FILE" "localhost:$HA_GRPC_TLS_PORT" app 2>&1)"
$GRPC --watch 2 --timeout 5000 "$G" app >"$WORK/watch" 2>&1 &
watch_pid=$!
for _ in $(seq 50); do [ -s "$WORK/watch" ] && break; sleep 0.1; done   # first status seen
check "grpc switch app to NOT_SERVING" '{"service":"app","status":"NOT_SERVING"}' \
    "$(curl -sS "$U/grpc/set?service=app&status=NOT_SERVING" 2>&1)"
check "grpc Check app after the switch" NOT_SERVING "$($GRPC "$G" app 2>&1)"
check "grpc over TLS after the switch" NOT_SERVING "$($GRPC --ca "$HA_CA_FILE" "localhost:$HA_GRPC_TLS_PORT" app 2>&1)"
check "grpc Check \"\" unchanged" SERVING "$($GRPC "$G" "" 2>&1)"
wait "$watch_pid"
check "grpc Watch sees the switch" "SERVING NOT_SERVING" "$(tr '\n' ' ' <"$WORK/watch" | sed 's/ $//')"
curl -sS "$U/grpc/reset" >/dev/null 2>&1
check "grpc /grpc/reset" SERVING "$($GRPC "$G" app 2>&1)"

# ------------------------------------------------------------------ fast faults
s="$(now)"; bash -c "exec 3<>/dev/tcp/$H/$HA_REFUSED_PORT" 2>"$WORK/err"; rc=$?; ms="$(since "$s")"
if [ "$rc" = 1 ] && grep -q 'Connection refused' "$WORK/err" && [ "$ms" -lt 1000 ]; then
    ok "refused port refuses (${ms} ms)"
else
    fail "refused port refuses" "rc $rc after $ms ms: $(cat "$WORK/err")"
fi
timeout 2 bash -c "exec 3<>/dev/tcp/$H/$HA_CLOSE_PORT && cat <&3" >"$WORK/close.out" 2>&1; rc=$?
check "close fixture: EOF at once" "0 0" "$rc $(wc -c <"$WORK/close.out")"
timeout 2 bash -c "exec 3<>/dev/tcp/$H/$HA_RESET_PORT && sleep 0.2 && cat <&3" 2>"$WORK/err" >/dev/null; rc=$?
if [ "$rc" = 1 ] && grep -q 'reset by peer' "$WORK/err"; then ok "reset fixture: connection reset"
else fail "reset fixture: connection reset" "rc $rc: $(cat "$WORK/err")"; fi

# ------------------------------------------------------------------ Nagios plugins
"$HA_NAGIOS_PLUGIN_DIR/check_tcp" -H "$H" -p "$HA_HTTP_PORT" >/dev/null 2>&1
check "check_tcp on the http port is OK" 0 "$?"
"$HA_NAGIOS_PLUGIN_DIR/check_tcp" -H "$H" -p "$HA_REFUSED_PORT" >/dev/null 2>&1
check "check_tcp on the refused port is CRITICAL" 2 "$?"
"$HA_NAGIOS_PLUGIN_DIR/check_http" -H "$H" -p "$HA_HTTP_PORT" -u /ok -s ok >/dev/null 2>&1
check "check_http /ok is OK" 0 "$?"

# ------------------------------------------------------------------ env.lua
check "env.lua matches env" "$HA_REDIS_PORT $HA_CA_FILE" \
    "$(lua5.4 -e "local e = dofile('$DIR/env.lua'); io.write(math.type(e.HA_REDIS_PORT), ' ', e.HA_REDIS_PORT, ' ', e.HA_CA_FILE)" 2>&1 | sed 's/^integer //')"

# ------------------------------------------------------------------ pause / resume
"$SERVERS" pause redis "$DIR"
timeout 1 "${REDIS[@]}" -a "$HA_REDIS_PASSWORD" --no-auth-warning PING >/dev/null 2>&1
check "paused redis does not answer" 124 "$?"
"$SERVERS" resume redis "$DIR"
check "resumed redis answers" PONG "$("${REDIS[@]}" -a "$HA_REDIS_PASSWORD" --no-auth-warning PING 2>&1)"

# ------------------------------------------------------------------ slow faults
wait
read -r rc n ms <"$WORK/backlog"
check "full backlog: connect still hanging after 5 s" "124" "$rc"
read -r rc n ms <"$WORK/silent"
check "silent fixture: connected, 0 bytes in 2 s" "124 0" "$rc $n"
read -r rc n ms <"$WORK/trickle"
if [ "$rc" = 124 ] && [ "$n" -ge 3 ] && [ "$n" -le 5 ] && [ "$(head -c 3 "$WORK/trickle.out")" = HTT ]; then
    ok "trickle fixture: $n bytes in ${ms} ms"
else
    fail "trickle fixture: 3 to 5 bytes in 3.5 s" "rc $rc, $n bytes ($(cat "$WORK/trickle.out"))"
fi

# ------------------------------------------------------------------ stop
pids="$(cat "$DIR"/pids/*.pid 2>/dev/null | tr '\n' ' ')"
s="$(now)"
"$SERVERS" stop "$DIR"
check "servers.sh stop" 0 "$?"
ms="$(since "$s")"
left=""
# A zombie waiting for init to reap it does not count: it holds nothing.
running() { [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != "" ] &&
            [ "$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" != Z ]; }
for p in $pids $(pgrep -f "$DIR" 2>/dev/null); do
    if [ "$p" != "$$" ] && running "$p"; then left="$left $p($(cat "/proc/$p/comm" 2>/dev/null))"; fi
done
check "no process left after stop (${ms} ms)" "" "$left"
busy=""
for p in $(seq "$HA_PORT_BASE" $((HA_PORT_BASE + 14))); do
    if [ -n "$(ss -Htln "sport = :$p")" ]; then busy="$busy $p"; fi
done
check "no port left listening after stop" "" "$busy"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
