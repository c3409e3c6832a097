#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft, combined broker+controller) run from Maven Central jars,
# so the interop suite can be proven against the reference implementation.
#
#   kafka-broker.sh fetch                 resolve the jars (pinned in kafka/pom.xml) into $KAFKA_LIB
#   kafka-broker.sh init  STATE_DIR PORT  write server.properties, format the log dir
#   kafka-broker.sh start STATE_DIR       launch in the background, wait until the port accepts
#   kafka-broker.sh stop  STATE_DIR       SIGTERM, then SIGKILL after 30 s
#   kafka-broker.sh kill9 STATE_DIR       SIGKILL (crash test), waits until the process is gone
#
# Listens on 127.0.0.1 only. The PID is kept in STATE_DIR/pid; nothing is killed by name.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
KAFKA_LIB="${KAFKA_LIB:-${INTEROP_WORK:-$REPO/target/interop}/kafka-lib}"
JAVA="${JAVA:-java}"

die() { echo "kafka-broker.sh: $*" >&2; exit 1; }

fetch() {
    if [ -f "$KAFKA_LIB/.complete" ]; then return 0; fi
    mkdir -p "$KAFKA_LIB"
    mvn -B -q -Dstyle.color=never ${MVN_OFFLINE:+-o} -f "$HERE/kafka/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$KAFKA_LIB" -DincludeScope=runtime
    touch "$KAFKA_LIB/.complete"
}

kjava() { "$JAVA" -Xms256m -Xmx768m -cp "$KAFKA_LIB/*" "$@"; }

init() {
    local state="$1" port="$2"
    fetch
    mkdir -p "$state/data"
    local cport
    cport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    # group.initial.rebalance.delay.ms stays at Kafka's default (3 s), as on the Sluice side:
    # with 0, a kafka-python 3.0.12 group leader can lose the answer to its own re-join and
    # stall (see InitialJoin in net/src/group/state.rs); it did so here in 1 of 2 runs.
    cat > "$state/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$state/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=false
# test_compaction.py waits for the log cleaner (default backoff 15 s).
log.cleaner.backoff.ms=200
PROPS
    echo "$port" > "$state/port"
    local cluster_id
    cluster_id="$(kjava kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    kjava kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$state/server.properties" \
        > "$state/format.log" 2>&1 || { cat "$state/format.log" >&2; die "format failed"; }
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

start() {
    local state="$1"
    [ -f "$state/server.properties" ] || die "$state not initialised"
    local port; port="$(cat "$state/port")"
    nohup "$JAVA" -Xms256m -Xmx768m -XX:+UseG1GC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        -cp "$KAFKA_LIB/*" kafka.Kafka "$state/server.properties" >> "$state/broker.log" 2>&1 &
    echo $! > "$state/pid"
    wait_port "$port" "$(cat "$state/pid")" || { tail -50 "$state/broker.log" >&2; die "broker did not come up on 127.0.0.1:$port"; }
}

wait_gone() {
    local pid="$1" tries="$2" i
    for i in $(seq 1 "$tries"); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
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
    fetch) fetch ;;
    init) [ $# -eq 2 ] || die "usage: init STATE_DIR PORT"; init "$1" "$2" ;;
    start|stop|kill9) [ $# -eq 1 ] || die "usage: $cmd STATE_DIR"; "$cmd" "$1" ;;
    *) die "usage: kafka-broker.sh fetch|init|start|stop|kill9 ..." ;;
esac
