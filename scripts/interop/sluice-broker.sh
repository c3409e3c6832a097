#!/usr/bin/env bash
# The Sluice broker under test, with the same verbs as kafka-broker.sh so the suite
# (and its SIGKILL/restart test) drives either one the same way.
#
#   sluice-broker.sh init  STATE_DIR PORT [ADMIN_PORT]  write STATE_DIR/sluice.toml, make the data dir
#   sluice-broker.sh start STATE_DIR       $SLUICE_BIN serve ... in the background, wait for the port
#   sluice-broker.sh stop  STATE_DIR       SIGTERM, then SIGKILL after 30 s
#   sluice-broker.sh kill9 STATE_DIR       SIGKILL (crash test), waits until the process is gone
#
# SLUICE_BIN: path to the sluice binary (required). SLUICE_CONFIG_TEMPLATE: optional TOML
# file in which @PORT@, @ADMIN_PORT@ and @DATA_DIR@ are replaced, for when the config
# layout changes. ADMIN_PORT: the admin endpoint's own port (the default 9644 may be held
# by another broker on this machine, and SO_REUSEPORT would split requests between them).
set -euo pipefail
die() { echo "sluice-broker.sh: $*" >&2; exit 1; }

init() {
    local state="$1" port="$2" admin_port="${3:-9644}"
    mkdir -p "$state/data"
    echo "$port" > "$state/port"
    if [ -n "${SLUICE_CONFIG_TEMPLATE:-}" ]; then
        sed -e "s#@PORT@#$port#g" -e "s#@ADMIN_PORT@#$admin_port#g" -e "s#@DATA_DIR@#$state/data#g" "$SLUICE_CONFIG_TEMPLATE" > "$state/sluice.toml"
    else
        cat > "$state/sluice.toml" <<TOML
[engine]
data_dir = "$state/data"
# test_compaction.py waits for the log cleaner: look every 200 ms, not every 15 s.
compaction_check_interval_ms = 200

[server]
listeners = "127.0.0.1:$port"
admin_listener = "127.0.0.1:$admin_port"
# As on the Apache Kafka side of the suite: topics exist only when a test creates them.
auto_create_topics_enable = false
TOML
    fi
}

wait_port() {
    local port="$1" pid="$2" i
    for i in $(seq 1 300); do   # 300 x 0.2 s = 60 s
        kill -0 "$pid" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    return 1
}

wait_gone() {
    local pid="$1" tries="$2" i
    for i in $(seq 1 "$tries"); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

start() {
    local state="$1"
    [ -n "${SLUICE_BIN:-}" ] || die "SLUICE_BIN is not set"
    [ -x "$SLUICE_BIN" ] || die "SLUICE_BIN=$SLUICE_BIN is not executable"
    local port; port="$(cat "$state/port")"
    echo "=== start $(date -u +%FT%TZ)" >> "$state/broker.log"
    RUST_LOG="${RUST_LOG:-info}" nohup "$SLUICE_BIN" serve --data-dir "$state/data" --config "$state/sluice.toml" \
        >> "$state/broker.log" 2>&1 &
    echo $! > "$state/pid"
    wait_port "$port" "$(cat "$state/pid")" || { tail -50 "$state/broker.log" >&2; die "sluice did not come up on 127.0.0.1:$port"; }
}

stop() {
    local state="$1"
    [ -f "$state/pid" ] || return 0
    local pid; pid="$(cat "$state/pid")"
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" 300 || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 100 || true; }
    rm -f "$state/pid"
}

kill9() {
    local state="$1"
    local pid; pid="$(cat "$state/pid")"
    kill -KILL "$pid"
    wait_gone "$pid" 100 || die "pid $pid survived SIGKILL"
    rm -f "$state/pid"
}

cmd="${1:-}"; shift || true
case "$cmd" in
    init) [ $# -eq 2 ] || [ $# -eq 3 ] || die "usage: init STATE_DIR PORT [ADMIN_PORT]"; init "$@" ;;
    start|stop|kill9) [ $# -eq 1 ] || die "usage: $cmd STATE_DIR"; "$cmd" "$1" ;;
    *) die "usage: sluice-broker.sh init|start|stop|kill9 ..." ;;
esac
