#!/usr/bin/env bash
# Start a coordinator and N edge nodes on 127.0.0.1, each with its own ports,
# data directory, log and pid file, for trying the edge mesh on one machine.
#
#   deploy/local-mesh.sh [start] [-n N] [--regions fra,iad,...] [--base-port P]
#                        [--dir D] [--bin-dir B] [--timeout SECONDS]
#   deploy/local-mesh.sh status [--dir D]
#   deploy/local-mesh.sh stop [--dir D] [--timeout SECONDS]
#
# Ports (P = --base-port, default 18700):
#   coordinator  API P (tcp), QUIC P+1 (udp)
#   edge-i       HTTP P+10i (tcp), HTTPS P+10i+1 (tcp), mesh P+10i+2 (udp), i = 1..N
#
# The first start joins every edge with a one-time token; starting again with
# the same --dir restarts the existing nodes with `edge-node run` (a larger -n
# joins the extra nodes). Binaries: --bin-dir, default
# ${CARGO_TARGET_DIR:-<repo>/target}/release
# (cargo build --release -p outpost-coordinator -p outpost-edge-node).
set -euo pipefail
umask 077

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
    sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "local-mesh: $*" >&2
    exit 1
}

# ---------------------------------------------------------------- arguments

ACTION=start
NODES=3
NODES_SET=0
REGIONS=fra,iad,sin
BASE_PORT=18700
BASE_PORT_SET=0
DIR=./.outpost-mesh
BIN_DIR=${CARGO_TARGET_DIR:-$REPO/target}/release
TIMEOUT=60

if [[ $# -gt 0 && $1 != -* ]]; then
    ACTION=$1
    shift
fi
case $ACTION in
start | stop | status) ;;
help) usage; exit 0 ;;
*) usage >&2; die "unknown command '$ACTION' (start, stop, status)" ;;
esac

need_value() {
    [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"
}

while [[ $# -gt 0 ]]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    -n | --nodes) need_value "$@"; NODES=$2; NODES_SET=1; shift 2 ;;
    --nodes=*) NODES=${1#*=}; NODES_SET=1; shift ;;
    --regions) need_value "$@"; REGIONS=$2; shift 2 ;;
    --regions=*) REGIONS=${1#*=}; shift ;;
    --base-port) need_value "$@"; BASE_PORT=$2; BASE_PORT_SET=1; shift 2 ;;
    --base-port=*) BASE_PORT=${1#*=}; BASE_PORT_SET=1; shift ;;
    --dir) need_value "$@"; DIR=$2; shift 2 ;;
    --dir=*) DIR=${1#*=}; shift ;;
    --bin-dir) need_value "$@"; BIN_DIR=$2; shift 2 ;;
    --bin-dir=*) BIN_DIR=${1#*=}; shift ;;
    --timeout) need_value "$@"; TIMEOUT=$2; shift 2 ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    *) usage >&2; die "unknown option '$1'" ;;
    esac
done

[[ $NODES =~ ^[1-9][0-9]{0,3}$ ]] || die "-n must be a positive number, got '$NODES'"
if ! [[ $BASE_PORT =~ ^[1-9][0-9]{3,4}$ ]] || ((BASE_PORT < 1024)); then
    die "--base-port must be a port number >= 1024, got '$BASE_PORT'"
fi
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive number of seconds, got '$TIMEOUT'"
((BASE_PORT + 10 * NODES + 2 <= 65535)) || die "-n $NODES does not fit above --base-port $BASE_PORT"

IFS=, read -r -a REGION_LIST <<<"$REGIONS"
((${#REGION_LIST[@]} > 0)) || die "--regions is empty"
for r in "${REGION_LIST[@]}"; do
    [[ $r =~ ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]] ||
        die "region '$r' is not a DNS label ([a-z0-9-], e.g. fra, us-east)"
done

# ---------------------------------------------------------------- helpers

# True while the process runs (a zombie counts as gone).
alive() {
    local pid=$1 stat
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r /proc/$pid/stat ]]; then
        stat=$(<"/proc/$pid/stat") || return 1
        stat=${stat##*) }
        [[ ${stat:0:1} != Z ]] || return 1
    fi
    return 0
}

# True if PID runs program NAME (argv[0], or argv[1] under an interpreter).
runs_program() {
    local pid=$1 name=$2 line
    local -a argv=()
    if [[ -r /proc/$pid/cmdline ]]; then
        mapfile -d '' -t argv <"/proc/$pid/cmdline" 2>/dev/null || return 1
    else
        line=$(ps -o args= -p "$pid" 2>/dev/null) || return 1
        read -r -a argv <<<"$line"
    fi
    ((${#argv[@]} > 0)) || return 1
    [[ ${argv[0]##*/} == "$name" || ${argv[1]:-} == */"$name" ]]
}

# Pid from a pid file if that process is still ours (same program name).
live_pid() {
    local pidfile=$1 expect=$2 pid
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    runs_program "$pid" "$expect" || return 1
    echo "$pid"
}

tcp_port_taken() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

api_port() { echo "$BASE_PORT"; }
quic_port() { echo $((BASE_PORT + 1)); }
http_port() { echo $((BASE_PORT + 10 * $1)); }
https_port() { echo $((BASE_PORT + 10 * $1 + 1)); }
mesh_port() { echo $((BASE_PORT + 10 * $1 + 2)); }

# Edge numbers present in DIR (joined or with a pid file), ascending.
known_edges() {
    local f n
    for f in "$DIR"/edge-*; do
        [[ -e $f ]] || continue
        n=${f##*/edge-}
        n=${n%%.*}
        if [[ $n =~ ^[0-9]+$ ]]; then echo "$n"; fi
    done | sort -nu
}

# Region recorded at join (node.json), else what the region list says.
edge_region() {
    local i=$1 r=""
    if [[ -f $DIR/edge-$i/node.json ]]; then
        r=$(grep -o '"region"[[:space:]]*:[[:space:]]*"[^"]*"' "$DIR/edge-$i/node.json" |
            head -n1 | sed 's/.*"\([^"]*\)"$/\1/') || true
    fi
    [[ -n $r ]] || r=${REGION_LIST[$(((i - 1) % ${#REGION_LIST[@]}))]}
    echo "$r"
}

log_tail() {
    local log=$1
    echo "---- last lines of $log ----" >&2
    tail -n 40 "$log" >&2 2>/dev/null || true
    echo "----" >&2
}

# Start a program in the background with its output in LOG (the previous log
# is kept as LOG.1) and its pid in PIDFILE.
launch() {
    local log=$1 pidfile=$2
    shift 2
    if [[ -f $log ]]; then mv -f "$log" "$log.1"; fi
    nohup "$@" </dev/null >"$log" 2>&1 &
    echo $! >"$pidfile"
}

# Wait (bounded) for PATTERN in LOG while PID lives; on failure show the log,
# stop everything and exit.
wait_ready() {
    local name=$1 pid=$2 log=$3 pattern=$4
    local deadline=$((SECONDS + TIMEOUT))
    until grep -qF -- "$pattern" "$log" 2>/dev/null; do
        if ! alive "$pid"; then
            echo "local-mesh: $name (pid $pid) exited before it was ready" >&2
            log_tail "$log"
            stop_all
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "local-mesh: $name (pid $pid) not ready after ${TIMEOUT}s" >&2
            log_tail "$log"
            stop_all
            exit 1
        fi
        sleep 0.2
    done
}

# SIGTERM every pid given, then wait (bounded) for them to go; SIGKILL stragglers.
terminate() {
    local pid deadline left
    (($# > 0)) || return 0
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + TIMEOUT))
    while :; do
        left=()
        for pid in "$@"; do alive "$pid" && left+=("$pid"); done
        ((${#left[@]} > 0)) || return 0
        if ((SECONDS >= deadline)); then
            echo "local-mesh: still running after ${TIMEOUT}s, killing: ${left[*]}" >&2
            kill -KILL "${left[@]}" 2>/dev/null || true
            return 0
        fi
        sleep 0.2
    done
}

# Edges first (they drain and leave the mesh), then the coordinator.
stop_all() {
    local i pid edges=()
    for i in $(known_edges); do
        if pid=$(live_pid "$DIR/edge-$i.pid" edge-node); then
            echo "stopping edge-$i (pid $pid)"
            edges+=("$pid")
        fi
        rm -f "$DIR/edge-$i.pid"
    done
    terminate "${edges[@]+"${edges[@]}"}"
    if pid=$(live_pid "$DIR/coordinator.pid" coordinator); then
        echo "stopping coordinator (pid $pid)"
        terminate "$pid"
    fi
    rm -f "$DIR/coordinator.pid"
}

print_table() {
    local i pid
    printf '%-12s %-8s %-22s %-22s %-22s %s\n' NAME REGION HTTP HTTPS MESH PID
    pid=$(live_pid "$DIR/coordinator.pid" coordinator) || pid="-"
    printf '%-12s %-8s %-22s %-22s %-22s %s\n' coordinator - \
        "api 127.0.0.1:$(api_port)" - "quic 127.0.0.1:$(quic_port)" "$pid"
    for i in $(known_edges); do
        [[ -f $DIR/edge-$i/node.json ]] || continue
        pid=$(live_pid "$DIR/edge-$i.pid" edge-node) || pid="-"
        printf '%-12s %-8s %-22s %-22s %-22s %s\n' "edge-$i" "$(edge_region "$i")" \
            "127.0.0.1:$(http_port "$i")" "127.0.0.1:$(https_port "$i")" \
            "127.0.0.1:$(mesh_port "$i")" "$pid"
    done
}

# ---------------------------------------------------------------- commands

case $ACTION in
stop | status)
    [[ -d $DIR ]] || die "$DIR does not exist (nothing started there)"
    DIR=$(cd "$DIR" && pwd)
    if [[ -f $DIR/base-port ]]; then BASE_PORT=$(<"$DIR/base-port"); fi
    if [[ $ACTION == stop ]]; then
        stop_all
        echo "stopped (data kept in $DIR; delete it to start from scratch)"
    else
        print_table
    fi
    exit 0
    ;;
esac

# start
for b in coordinator edge-node; do
    [[ -x $BIN_DIR/$b ]] ||
        die "$BIN_DIR/$b not found: cargo build --release -p outpost-coordinator -p outpost-edge-node, or pass --bin-dir"
done
BIN_DIR=$(cd "$BIN_DIR" && pwd)

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

# The edges saved the coordinator's address and their own ports at join:
# one directory, one base port.
if [[ -f $DIR/base-port ]]; then
    saved=$(<"$DIR/base-port")
    if ((BASE_PORT_SET)) && [[ $saved != "$BASE_PORT" ]]; then
        die "$DIR was set up with --base-port $saved; use that, or another --dir"
    fi
    BASE_PORT=$saved
fi

# Restarting without -n: every node that has joined before.
max_known=0
for i in $(known_edges); do
    if [[ -f $DIR/edge-$i/node.json ]] && ((i > max_known)); then max_known=$i; fi
done
if ((max_known > NODES)); then
    if ((NODES_SET)); then
        echo "local-mesh: starting edge-1..edge-$NODES; edge-$((NODES + 1))..edge-$max_known stay stopped" >&2
    else
        NODES=$max_known
    fi
fi
((BASE_PORT + 10 * NODES + 2 <= 65535)) || die "-n $NODES does not fit above --base-port $BASE_PORT"

if pid=$(live_pid "$DIR/coordinator.pid" coordinator); then
    die "coordinator already running (pid $pid): $0 stop --dir $DIR"
fi
for ((i = 1; i <= NODES; i++)); do
    if pid=$(live_pid "$DIR/edge-$i.pid" edge-node); then
        die "edge-$i already running (pid $pid): $0 stop --dir $DIR"
    fi
done

tcp_ports=("$(api_port)")
for ((i = 1; i <= NODES; i++)); do tcp_ports+=("$(http_port "$i")" "$(https_port "$i")"); done
for p in "${tcp_ports[@]}"; do
    if tcp_port_taken "$p"; then
        die "127.0.0.1:$p is in use; pick another --base-port (or stop what uses it)"
    fi
done
echo "$BASE_PORT" >"$DIR/base-port"

# Keep the caller's coordinator settings out of this private cluster.
unset OUTPOST_CONFIG OUTPOST_DATABASE_URL OUTPOST_SECRET_KEY OUTPOST_DATA_DIR \
    OUTPOST_API_ADDR OUTPOST_QUIC_ADDR OUTPOST_BASE_DOMAIN OUTPOST_PUBLIC_URL \
    OUTPOST_EDGE_DATA_DIR OUTPOST_JOIN_TOKEN

API_URL="http://127.0.0.1:$(api_port)"
COORD_LOG=$DIR/coordinator.log

# Interrupted half-way: stop what has started (background children ignore ^C).
trap 'echo; stop_all; exit 130' INT TERM

echo "starting coordinator (api $API_URL, quic 127.0.0.1:$(quic_port))"
launch "$COORD_LOG" "$DIR/coordinator.pid" \
    "$BIN_DIR/coordinator" serve \
    --data-dir "$DIR/coordinator" \
    --api-addr "127.0.0.1:$(api_port)" \
    --quic-addr "127.0.0.1:$(quic_port)" \
    --base-domain localhost \
    --public-url "http://{host}:$(http_port 1)"
wait_ready coordinator "$(<"$DIR/coordinator.pid")" "$COORD_LOG" "coordinator API on"

ADMIN_TOKEN_FILE=$DIR/coordinator/admin-token
[[ -s $ADMIN_TOKEN_FILE ]] || { log_tail "$COORD_LOG"; stop_all; die "no admin token in $ADMIN_TOKEN_FILE"; }

for ((i = 1; i <= NODES; i++)); do
    name=edge-$i
    data=$DIR/$name
    log=$DIR/$name.log
    if [[ -f $data/node.json ]]; then
        echo "restarting $name"
        launch "$log" "$DIR/$name.pid" "$BIN_DIR/edge-node" run --data-dir "$data"
    else
        region=${REGION_LIST[$(((i - 1) % ${#REGION_LIST[@]}))]}
        echo "joining $name (region $region)"
        if ! token=$(OUTPOST_URL=$API_URL OUTPOST_TOKEN=$(<"$ADMIN_TOKEN_FILE") \
            "$BIN_DIR/coordinator" token create-join --region "$region" --ttl 600 2>"$DIR/token.err"); then
            cat "$DIR/token.err" >&2
            stop_all
            die "could not create a join token for $name"
        fi
        rm -f "$DIR/token.err"
        mkdir -p "$data"
        launch "$log" "$DIR/$name.pid" "$BIN_DIR/edge-node" join "127.0.0.1:$(quic_port)" \
            --token "$token" \
            --region "$region" \
            --name "$name" \
            --data-dir "$data" \
            --http "127.0.0.1:$(http_port "$i")" \
            --https "127.0.0.1:$(https_port "$i")" \
            --mesh "127.0.0.1:$(mesh_port "$i")"
    fi
    wait_ready "$name" "$(<"$DIR/$name.pid")" "$log" "serving http://"
done

trap - INT TERM

echo
print_table
cat <<EOF

Logs and pid files: $DIR/*.log, $DIR/*.pid

Deploy and fetch:
  export OUTPOST_URL=$API_URL OUTPOST_TOKEN=\$(cat $ADMIN_TOKEN_FILE)
  $BIN_DIR/coordinator deploy ./site --project demo --prod
  curl -H 'Host: demo.localhost' http://127.0.0.1:$(http_port 1)/
  curl --cacert $DIR/coordinator/ca/ca.pem --resolve demo.localhost:$(https_port 1):127.0.0.1 https://demo.localhost:$(https_port 1)/

Mesh health:
  $BIN_DIR/coordinator nodes
  $BIN_DIR/edge-node status --data-dir $DIR/edge-1

Stop:
  $0 stop --dir $DIR
EOF
