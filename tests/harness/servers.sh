#!/usr/bin/env bash
# Private servers and fault fixtures for healthagent's integration tests.
#
#   tests/harness/servers.sh start  [DIR]   start everything (stops a previous run first)
#   tests/harness/servers.sh stop   [DIR]   stop everything started from DIR
#   tests/harness/servers.sh env    [DIR]   print DIR/env (shell export lines)
#   tests/harness/servers.sh status [DIR]   which processes are alive
#   tests/harness/servers.sh pause  NAME [DIR]   SIGSTOP redis|pg|mariadb|upstreams
#   tests/harness/servers.sh resume NAME [DIR]   SIGCONT it again
#
# DIR defaults to $HA_HARNESS_DIR or /tmp/ha-harness. Ports are fixed:
# $HA_PORT_BASE (default 24700) plus a fixed offset each, below the kernel's
# ephemeral range so no client socket can take them. Everything listens on
# 127.0.0.1 only. See README.md for the list.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

CMD="${1:-}"
[ -n "$CMD" ] || usage
shift
NAME=""
case "$CMD" in
    pause|resume) NAME="${1:-}"; [ -n "$NAME" ] || usage; shift ;;
esac
DIR="${1:-${HA_HARNESS_DIR:-/tmp/ha-harness}}"
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
DIR="${DIR%/}"

BASE="${HA_PORT_BASE:-24700}"
HOST=127.0.0.1
RUN_USER=hatest            # PostgreSQL and MariaDB refuse to run as root
PASSWORD=ha-secret

REDIS_PORT=$((BASE + 0))
PG_PORT=$((BASE + 1))
MARIADB_PORT=$((BASE + 2))
HTTP_PORT=$((BASE + 3))
HTTPS_PORT=$((BASE + 4))
HTTPS_EXPIRED_PORT=$((BASE + 5))
H2C_PORT=$((BASE + 6))
GRPC_PORT=$((BASE + 7))
GRPC_TLS_PORT=$((BASE + 8))
REFUSED_PORT=$((BASE + 9))
BACKLOG_PORT=$((BASE + 10))
SILENT_PORT=$((BASE + 11))
TRICKLE_PORT=$((BASE + 12))
CLOSE_PORT=$((BASE + 13))
RESET_PORT=$((BASE + 14))
ALL_PORTS=$(seq "$BASE" $((BASE + 14)))

PG_BIN=/usr/lib/postgresql/15/bin
if [ ! -x "$PG_BIN/postgres" ]; then
    PG_BIN="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
fi

# Every daemon inherits this: sweep_ports reads it back from /proc/PID/environ
# to tell a leftover of this DIR from a live harness of another DIR.
export HA_HARNESS_DIR="$DIR"

PIDS="$DIR/pids"
LOGS="$DIR/logs"
TLS="$DIR/tls"
MARKER=.ha-harness   # a dir holding this file is ours to wipe
# PRIV holds what the user $RUN_USER owns (PostgreSQL and MariaDB data) and
# every unix socket. It is DIR itself unless $RUN_USER cannot reach DIR (say
# a build dir under /root) or DIR is too long for a socket path (108 bytes);
# then a directory under /tmp named after DIR. start records it in DIR/env.
PRIV="$DIR"

log() { printf 'servers.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------- env file

# Every exported variable, in order, as NAME=VALUE (values have no spaces).
env_pairs() {
    cat <<EOF
HA_HARNESS_DIR=$DIR
HA_HARNESS_PRIVATE_DIR=$PRIV
HA_HOST=$HOST
HA_REDIS_PORT=$REDIS_PORT
HA_REDIS_PASSWORD=$PASSWORD
HA_REDIS_SOCKET=$PRIV/redis.sock
HA_REDIS_PID_FILE=$PIDS/redis.pid
HA_PG_PORT=$PG_PORT
HA_PG_USER=ha
HA_PG_PASSWORD=$PASSWORD
HA_PG_DATABASE=hadb
HA_PG_SOCKET_DIR=$PRIV/pg
HA_PG_PID_FILE=$PIDS/pg.pid
HA_PG_BIN=$PG_BIN
HA_MARIADB_PORT=$MARIADB_PORT
HA_MARIADB_USER=ha
HA_MARIADB_PASSWORD=$PASSWORD
HA_MARIADB_DATABASE=hadb
HA_MARIADB_SOCKET=$PRIV/mariadb/mariadb.sock
HA_MARIADB_PID_FILE=$PIDS/mariadb.pid
HA_HTTP_PORT=$HTTP_PORT
HA_HTTPS_PORT=$HTTPS_PORT
HA_HTTPS_EXPIRED_PORT=$HTTPS_EXPIRED_PORT
HA_H2C_PORT=$H2C_PORT
HA_GRPC_PORT=$GRPC_PORT
HA_GRPC_TLS_PORT=$GRPC_TLS_PORT
HA_CA_FILE=$TLS/ca.crt
HA_CERT_FILE=$TLS/server.crt
HA_KEY_FILE=$TLS/server.key
HA_EXPIRED_CERT_FILE=$TLS/expired.crt
HA_REFUSED_PORT=$REFUSED_PORT
HA_BACKLOG_PORT=$BACKLOG_PORT
HA_SILENT_PORT=$SILENT_PORT
HA_TRICKLE_PORT=$TRICKLE_PORT
HA_CLOSE_PORT=$CLOSE_PORT
HA_RESET_PORT=$RESET_PORT
HA_UPSTREAMS_PID_FILE=$PIDS/upstreams.pid
HA_BACKLOG_PID_FILE=$PIDS/backlog.pid
HA_NAGIOS_PLUGIN_DIR=/usr/lib/nagios/plugins
EOF
}

write_env() {
    local k v
    {
        echo "# written by tests/harness/servers.sh; source it"
        env_pairs | while IFS='=' read -r k v; do printf 'export %s=%q\n' "$k" "$v"; done
    } >"$DIR/env.tmp"
    {
        echo "-- written by tests/harness/servers.sh: return dofile(\"$DIR/env.lua\")"
        echo "return {"
        env_pairs | while IFS='=' read -r k v; do
            if [[ "$v" =~ ^[0-9]+$ ]]; then
                printf '  %s = %s,\n' "$k" "$v"
            else
                v="${v//\\/\\\\}"
                printf '  %s = "%s",\n' "$k" "${v//\"/\\\"}"
            fi
        done
        echo "}"
    } >"$DIR/env.lua.tmp"
    mv "$DIR/env.tmp" "$DIR/env"
    mv "$DIR/env.lua.tmp" "$DIR/env.lua"
}

# ---------------------------------------------------------------- helpers

# elapsed START: seconds since START (a "date +%s.%N" value), one decimal.
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# alive PID: PID runs and is not a zombie (a killed daemon stays a zombie
# until init reaps it, which can take seconds).
alive() {
    local st
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    st="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
    [ -n "$st" ] && [ "$st" != Z ]
}

# pid_of NAME: the pid recorded for NAME, or nothing.
pid_of() {
    local f="$PIDS/$1.pid"
    [ -f "$f" ] || return 0
    head -n 1 "$f" | tr -dc '0-9'
}

# wait_until SECONDS COMMAND...: poll every 0.1 s until COMMAND succeeds.
wait_until() {
    local deadline=$((SECONDS + $1)) ; shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# kill_wait PID [SECONDS]: SIGCONT + SIGTERM, then SIGKILL after SECONDS.
kill_wait() {
    local pid="$1" secs="${2:-10}"
    alive "$pid" || return 0
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_until "$secs" eval "! alive $pid"; then
        log "pid $pid ignored SIGTERM; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_until 5 eval "! alive $pid" || true
    fi
}

# listener_pids PORT: pids of processes listening on 127.0.0.1:PORT.
listener_pids() {
    ss -Htlnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

# Processes a previous harness run (from any DIR) may have left on our
# ports: only these are killed when found there; anything else is an error.
OUR_COMMS="redis-server postgres mariadbd node perl"

# owner_of PID COMM: the DIR of the harness that started PID, if known.
# redis-server overwrites its environment with its process title; its
# working directory is DIR/redis (--dir).
owner_of() {
    local cwd
    if [ "$2" = redis-server ]; then
        cwd="$(readlink "/proc/$1/cwd" 2>/dev/null || true)"
        [ "${cwd%/redis}" = "$cwd" ] || echo "${cwd%/redis}"
    else
        tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n 's/^HA_HARNESS_DIR=//p' | head -n 1
    fi
}

sweep_ports() {
    local port pid comm owner busy=0 seen=" "
    for port in $ALL_PORTS; do
        for pid in $(listener_pids "$port"); do
            [[ "$seen" == *" $pid "* ]] && continue
            seen="$seen$pid "
            comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
            owner="$(owner_of "$pid" "$comm")"
            if [ -n "$owner" ] && [ "$owner" != "$DIR" ] &&
               cat "$owner"/pids/*.pid 2>/dev/null | grep -qx "$pid"; then
                log "port $port is used by the harness in $owner (pid $pid)"
                busy=1
            elif [[ " $OUR_COMMS " == *" $comm "* ]]; then
                log "killing leftover $comm (pid $pid) on port $port"
                kill_wait "$pid" 10 &
            else
                log "port $port is taken by $comm (pid $pid), not ours"
                busy=1
            fi
        done
    done
    wait
    [ "$busy" = 0 ] || { log "ports $BASE..$((BASE + 14)) must be free (set HA_PORT_BASE to move them)"; return 1; }
}

# ---------------------------------------------------------------- TLS

make_certs() {
    mkdir -p "$TLS/ca-db"
    cd "$TLS"
    local subj_ext="subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=healthagent test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.crt
    openssl ecparam -name prime256v1 -genkey -noout -out server.key 2>/dev/null
    openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
    cat >server.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
$subj_ext
EOF
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
        -days 825 -extfile server.ext -out server.crt 2>/dev/null
    # Expired: "openssl x509 -req" in OpenSSL 3.0 cannot set dates in the
    # past, but "openssl ca" can (-startdate/-enddate). Same CA, same key,
    # same names: the only thing wrong with it is the date.
    : >ca-db/index.txt
    echo 1000 >ca-db/serial
    cat >ca.cnf <<EOF
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = $TLS
database = \$dir/ca-db/index.txt
serial = \$dir/ca-db/serial
new_certs_dir = \$dir/ca-db
certificate = \$dir/ca.crt
private_key = \$dir/ca.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
x509_extensions = server_ext
[ any ]
commonName = supplied
[ server_ext ]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
$subj_ext
EOF
    openssl ca -batch -config ca.cnf -notext -startdate 20200101000000Z -enddate 20200201000000Z \
        -in server.csr -out expired.crt 2>/dev/null
    chmod 644 ./*.crt ./*.key
}

# ---------------------------------------------------------------- servers

start_redis() {
    mkdir -p "$DIR/redis"
    redis-server --bind "$HOST" --port "$REDIS_PORT" --requirepass "$PASSWORD" \
        --unixsocket "$PRIV/redis.sock" --unixsocketperm 700 \
        --save '' --appendonly no --dir "$DIR/redis" \
        --daemonize yes --pidfile "$PIDS/redis.pid" --logfile "$LOGS/redis.log" \
        --protected-mode yes
    wait_until 15 eval "[ \"\$(redis-cli -h $HOST -p $REDIS_PORT -a $PASSWORD --no-auth-warning ping)\" = PONG ]" ||
        { log "redis did not answer PING"; return 1; }
}

pg_ctl_as() { runuser -u "$RUN_USER" -- "$PG_BIN/pg_ctl" "$@"; }

start_pg() {
    local data="$PRIV/pg/data"
    mkdir -p "$PRIV/pg"
    chown "$RUN_USER:" "$PRIV/pg"
    chmod 700 "$PRIV/pg"
    ln -sf "$PRIV/pg/postgres.log" "$LOGS/pg.log"
    runuser -u "$RUN_USER" -- "$PG_BIN/initdb" -D "$data" -U postgres -A trust \
        -E UTF8 --no-locale --no-sync --no-instructions >"$LOGS/pg-initdb.log" 2>&1 ||
        { log "initdb failed, see $LOGS/pg-initdb.log"; return 1; }
    cat >"$data/pg_hba.conf" <<EOF
# healthagent test harness: the socket (in $PRIV/pg, mode 700) is trusted
# for set-up; TCP clients must give a SCRAM password.
local all all                trust
host  all all 127.0.0.1/32   scram-sha-256
EOF
    cat >>"$data/postgresql.conf" <<EOF

# healthagent test harness
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PRIV/pg'
password_encryption = 'scram-sha-256'
max_connections = 50
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    pg_ctl_as -D "$data" -l "$PRIV/pg/postgres.log" -w -t 30 start >/dev/null ||
        { log "postgres did not start, see $LOGS/pg.log"; return 1; }
    head -n 1 "$data/postmaster.pid" >"$PIDS/pg.pid"
    "$PG_BIN/psql" -h "$PRIV/pg" -p "$PG_PORT" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE ha LOGIN PASSWORD '$PASSWORD'" \
        -c "CREATE DATABASE hadb OWNER ha" >"$LOGS/pg-setup.log" 2>&1 ||
        { log "postgres set-up failed, see $LOGS/pg-setup.log"; return 1; }
    PGPASSWORD="$PASSWORD" "$PG_BIN/psql" -h "$HOST" -p "$PG_PORT" -U ha -d hadb -qAt -v ON_ERROR_STOP=1 \
        -c "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)" \
        -c "INSERT INTO items VALUES (1, 'one'), (2, 'two')" >>"$LOGS/pg-setup.log" 2>&1 ||
        { log "postgres set-up failed, see $LOGS/pg-setup.log"; return 1; }
}

start_mariadb() {
    local m="$PRIV/mariadb"
    mkdir -p "$m"
    chown "$RUN_USER:" "$m"
    chmod 700 "$m"
    ln -sf "$m/error.log" "$LOGS/mariadb.log"
    # Small InnoDB files: the default 96 MiB redo log costs start-up time.
    local opts=(--skip-name-resolve --innodb-log-file-size=8M --innodb-buffer-pool-size=32M
                --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --skip-log-bin)
    (cd "$m" && mariadb-install-db --no-defaults --user="$RUN_USER" --datadir="$m/data" \
        --skip-test-db --auth-root-authentication-method=socket "${opts[@]}") \
        >"$LOGS/mariadb-install.log" 2>&1 ||
        { log "mariadb-install-db failed, see $LOGS/mariadb-install.log"; return 1; }
    (cd "$m" && exec setsid /usr/sbin/mariadbd --no-defaults --user="$RUN_USER" --datadir="$m/data" \
        --bind-address="$HOST" --port="$MARIADB_PORT" --socket="$m/mariadb.sock" \
        --pid-file="$m/mariadbd.pid" --log-error="$m/error.log" \
        --performance-schema=OFF --max-connections=50 "${opts[@]}" \
        </dev/null >>"$LOGS/mariadbd.out" 2>&1) &
    echo $! >"$PIDS/mariadb.pid"
    local pid=$!
    wait_until 30 eval "! alive $pid || mariadb-admin --no-defaults -S '$m/mariadb.sock' -u root ping" ||
        { log "mariadb did not answer, see $LOGS/mariadb.log"; return 1; }
    alive "$pid" || { log "mariadbd exited, see $LOGS/mariadb.log"; return 1; }
    mariadb --no-defaults -S "$m/mariadb.sock" -u root >"$LOGS/mariadb-setup.log" 2>&1 <<EOF ||
CREATE DATABASE hadb;
CREATE USER 'ha'@'127.0.0.1' IDENTIFIED BY '$PASSWORD';
CREATE USER 'ha'@'localhost' IDENTIFIED BY '$PASSWORD';
GRANT ALL PRIVILEGES ON hadb.* TO 'ha'@'127.0.0.1';
GRANT ALL PRIVILEGES ON hadb.* TO 'ha'@'localhost';
GRANT PROCESS, REPLICATION CLIENT ON *.* TO 'ha'@'127.0.0.1';
CREATE TABLE hadb.items (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL);
INSERT INTO hadb.items VALUES (1, 'one'), (2, 'two');
EOF
        { log "mariadb set-up failed, see $LOGS/mariadb-setup.log"; return 1; }
}

start_upstreams() {
    make_certs >"$LOGS/certs.log" 2>&1 || { log "certificates failed, see $LOGS/certs.log"; return 1; }
    [ -d "$HERE/node_modules/@grpc/grpc-js" ] || { log "run tests/harness/install.sh first"; return 1; }
    (
        set -a
        # shellcheck disable=SC1091
        . "$DIR/env"
        cd "$HERE"
        exec setsid node "$HERE/upstreams.js" </dev/null >>"$LOGS/upstreams.log" 2>&1
    ) &
    local pid=$!
    wait_until 20 eval "[ -f '$PIDS/upstreams.pid' ] || ! alive $pid" || true
    [ -f "$PIDS/upstreams.pid" ] || { log "upstreams.js did not start, see $LOGS/upstreams.log"; return 1; }
}

start_backlog() {
    (exec setsid perl "$HERE/backlog.pl" "$BACKLOG_PORT" "$PIDS/backlog.pid" \
        </dev/null >>"$LOGS/backlog.log" 2>&1) &
    local pid=$!
    wait_until 10 eval "[ -f '$PIDS/backlog.pid' ] || ! alive $pid" || true
    [ -f "$PIDS/backlog.pid" ] || { log "backlog.pl did not start, see $LOGS/backlog.log"; return 1; }
}

ensure_user() {
    id -u "$RUN_USER" >/dev/null 2>&1 && return 0
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$RUN_USER" ||
        id -u "$RUN_USER" >/dev/null 2>&1   # another run may have just created it
}

# ---------------------------------------------------------------- commands

# load_priv: PRIV as recorded by the last start in DIR/env.
load_priv() {
    local line
    line="$(grep -m 1 '^export HA_HARNESS_PRIVATE_DIR=' "$DIR/env" 2>/dev/null || true)"
    [ -z "$line" ] || PRIV="${line#export HA_HARNESS_PRIVATE_DIR=}"
}

# choose_priv: set PRIV for a new start (DIR exists).
choose_priv() {
    PRIV="$DIR"
    if [ "${#DIR}" -gt 60 ] || ! runuser -u "$RUN_USER" -- test -x "$DIR" 2>/dev/null; then
        PRIV="/tmp/ha-harness-$(printf '%s' "$DIR" | md5sum | cut -c1-12)"
    fi
}

# wipe_dir D: empty D (create it) if it is ours or empty; fail otherwise.
wipe_dir() {
    if [ -e "$1" ]; then
        if [ -f "$1/$MARKER" ]; then
            rm -rf "$1"
        elif [ -n "$(ls -A "$1" 2>/dev/null)" ]; then
            log "$1 exists and is not a harness state dir; refusing to wipe it"
            return 1
        fi
    fi
    mkdir -p "$1"
    chmod 755 "$1"
    touch "$1/$MARKER"
}

do_stop() {
    [ -d "$DIR" ] || return 0
    local pid name
    load_priv
    # Unfreeze first: a paused server cannot shut down.
    for name in redis pg mariadb upstreams backlog; do
        pid="$(pid_of "$name")"
        if alive "$pid"; then kill -CONT "$pid" 2>/dev/null || true; fi
    done
    pid="$(pid_of pg)"
    if alive "$pid"; then
        pg_ctl_as -D "$PRIV/pg/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || kill_wait "$pid" 5
    fi &
    for name in redis mariadb upstreams backlog; do
        pid="$(pid_of "$name")"
        kill_wait "$pid" 10 &
    done
    wait
    rm -f "$PIDS"/*.pid
    sweep_ports || true
    # A private dir under /tmp goes away with the run; its logs are kept.
    if [ "$PRIV" != "$DIR" ] && [ -f "$PRIV/$MARKER" ]; then
        for name in pg mariadb; do
            if [ -L "$LOGS/$name.log" ]; then
                cp --remove-destination "$(readlink "$LOGS/$name.log")" "$LOGS/$name.log" 2>/dev/null ||
                    rm -f "$LOGS/$name.log"
            fi
        done
        rm -rf "$PRIV"
    fi
}

do_start() {
    [ "$(id -u)" -eq 0 ] || die "run as root (PostgreSQL and MariaDB run as the user $RUN_USER)"
    local started
    started="$(date +%s.%N)"
    ensure_user
    do_stop
    sweep_ports || die "cannot start"
    wipe_dir "$DIR" || die "cannot start"
    mkdir -p "$PIDS" "$LOGS"
    choose_priv
    if [ "$PRIV" != "$DIR" ]; then
        wipe_dir "$PRIV" || die "cannot start"
        runuser -u "$RUN_USER" -- test -x "$PRIV" || die "$RUN_USER cannot reach $PRIV"
    fi
    write_env

    local names=(redis pg mariadb upstreams backlog) pids=() i failed=0
    for i in "${!names[@]}"; do
        # fd 9 holds the lock: the daemons must not inherit it.
        ( exec 9>&-; "start_${names[$i]}"; rc=$?
          [ -z "${HA_HARNESS_VERBOSE:-}" ] || log "${names[$i]}: rc $rc after $(elapsed "$started") s"
          exit "$rc" ) &
        pids[i]=$!
    done
    for i in "${!names[@]}"; do
        if ! wait "${pids[$i]}"; then
            log "${names[$i]} failed to start"
            failed=1
        fi
    done
    if [ "$failed" != 0 ]; then
        do_stop || true
        die "start-up failed; logs in $LOGS"
    fi
    # The refused port must really refuse.
    if (exec 3<>"/dev/tcp/$HOST/$REFUSED_PORT") 2>/dev/null; then
        do_stop || true
        die "something listens on the refused port $REFUSED_PORT"
    fi
    log "started in $(elapsed "$started") s; env in $DIR/env"
}

do_status() {
    local name pid rc=0
    for name in redis pg mariadb upstreams backlog; do
        pid="$(pid_of "$name")"
        if alive "$pid"; then
            echo "$name: running (pid $pid)"
        else
            echo "$name: not running"
            rc=1
        fi
    done
    return "$rc"
}

do_signal() {
    local sig="$1" pid
    case "$NAME" in
        redis|pg|mariadb|upstreams|backlog) ;;
        *) die "unknown server '$NAME' (redis, pg, mariadb, upstreams, backlog)" ;;
    esac
    pid="$(pid_of "$NAME")"
    alive "$pid" || die "$NAME is not running"
    kill "-$sig" "$pid"
}

# One start or stop at a time per state dir.
lock() {
    mkdir -p "$(dirname "$DIR")"
    exec 9>"$DIR.lock"
    flock -w 120 9 || die "another servers.sh holds $DIR.lock"
}

case "$CMD" in
    start)  lock; do_start ;;
    stop)   [ -d "$DIR" ] || exit 0; lock; do_stop ;;
    env)    [ -f "$DIR/env" ] || die "no $DIR/env: run '$0 start' first"; cat "$DIR/env" ;;
    status) do_status ;;
    pause)  do_signal STOP ;;
    resume) do_signal CONT ;;
    *)      usage ;;
esac
