#!/usr/bin/env bash
# A 3-node Apache Kafka 4.x KRaft cluster on 127.0.0.1 (each node broker+controller,
# 3 controller voters), from the Maven jars of scripts/apache-kafka.sh: the reference the
# Sluice cluster tools are proven against. Same commands as sluice-cluster.sh:
#
#   scripts/cluster/kafka-cluster.sh start <workdir> | kill <id> | restart <id> | stop
#                                    | cut <id> [--for S] | heal <id> | bootstrap | status
#
# Ports (PORT_BASE, default 39092): node i serves clients (and replication: Kafka replicates
# over its broker listener) on PORT_BASE+i-1 and KRaft on PORT_BASE+100+i-1.
# default.replication.factor=3, min.insync.replicas=2, every other broker setting is
# Kafka's default (replica.lag.time.max.ms 30 s, broker.session.timeout.ms 9 s).
# KAFKA_HEAP (default 512m) per node: the machine is small and shared.
# See scripts/cluster/lib.sh for the layout and the network cut.
set -euo pipefail
KIND=kafka
PORT_BASE="${PORT_BASE:-39092}"
HEAP="${KAFKA_HEAP:-512m}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

client_port() { echo $((PORT_BASE + $1 - 1)); }
peer_port() { echo $((PORT_BASE + 100 + $1 - 1)); }
extra_ports() { echo ""; }

voters() {
    local out="" i
    for i in 1 2 3; do out+="${out:+,}$i@127.0.0.1:$(peer_port "$i")"; done
    echo "$out"
}

kafka_libs() { "$ROOT/scripts/apache-kafka.sh" fetch; }

node_configure() {
    local id="$1" dir="$2"
    cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://127.0.0.1:$(client_port "$id"),CONTROLLER://127.0.0.1:$(peer_port "$id")
advertised.listeners=PLAINTEXT://127.0.0.1:$(client_port "$id")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
PROPS
}

java_base() { # dir heap
    local libs; libs="$(kafka_libs)"
    printf '%s\n' java -Xms"$2" -Xmx"$2" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
        -Dkafka.logs.dir="$1" -Dlog4j2.configurationFile="$(dirname "$libs")/log4j2.properties" -cp "$libs/*"
}

cluster_prepare() {
    local work="$1" id cmd cluster_id
    mapfile -t cmd < <(java_base "$work" 256m)
    cluster_id="$("${cmd[@]}" kafka.tools.StorageTool random-uuid 2>>"$work/format.log" | tail -1)"
    for id in 1 2 3; do
        "${cmd[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$work/node$id/server.properties" \
            >>"$work/format.log" 2>&1 || die "storage format of node $id failed, see $work/format.log"
    done
}

node_exec() {
    java_base "$2" "$HEAP"
    printf '%s\n' kafka.Kafka "$2/server.properties"
}

source "$HERE/lib.sh"
cluster_main "$@"
