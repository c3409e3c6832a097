#!/usr/bin/env bash
# Run a single-node Apache Kafka 4.x (KRaft, broker+controller in one JVM) from its
# Maven artifacts, for side-by-side benchmarks and client interop tests.
# Listens on 127.0.0.1 only; started and stopped by PID.
#
#   scripts/apache-kafka.sh fetch
#   scripts/apache-kafka.sh start --port 19092 --data-dir /tmp/k1 [--cpus 1] [--flush-every-message] [--heap 1g]
#   scripts/apache-kafka.sh stop  --data-dir /tmp/k1      (or: stop --pid 1234)
#   scripts/apache-kafka.sh classpath
#
# `start` formats KRaft storage in --data-dir (which must be empty or absent), starts the
# broker in the background, waits until the port accepts connections, and prints the PID
# alone on stdout (also written to <data-dir>/kafka.pid). Logs go to <data-dir>/kafka.log.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
SCALA_VERSION="2.13"
LOG4J_VERSION="2.24.3"
CACHE_DIR="${SLUICE_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/apache-kafka-${KAFKA_VERSION}}"
LIBS="$CACHE_DIR/libs"

die() { echo "apache-kafka.sh: $*" >&2; exit 1; }

fetch() {
  if [[ -f "$LIBS/.complete" ]]; then return 0; fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  command -v java >/dev/null || die "java not found (Kafka 4.x needs Java 17+)"
  mkdir -p "$CACHE_DIR"
  cat >"$CACHE_DIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.sluice</groupId><artifactId>apache-kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_${SCALA_VERSION}</artifactId><version>${KAFKA_VERSION}</version></dependency>
    <!-- Kafka logs through slf4j 1.x; without a binding its start-up errors vanish. -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>${LOG4J_VERSION}</version></dependency>
  </dependencies>
</project>
POM
  rm -rf "$LIBS"
  (cd "$CACHE_DIR" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS") >&2 \
    || die "maven could not resolve kafka_${SCALA_VERSION}:${KAFKA_VERSION}"
  [[ -f "$LIBS/kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar" ]] || die "kafka jar missing after fetch"
  cat >"$CACHE_DIR/log4j2.properties" <<'L4J'
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/kafka.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
L4J
  touch "$LIBS/.complete"
}

java_args() {
  # $1: data dir, $2: heap. Prints one JVM argument per line.
  printf '%s\n' -Xms"$2" -Xmx"$2" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Dkafka.logs.dir="$1" \
    -Dlog4j2.configurationFile="$CACHE_DIR/log4j2.properties" -cp "$LIBS/*"
}

java_cmd() {
  local dir="$1" heap="$2"; shift 2
  local args; mapfile -t args < <(java_args "$dir" "$heap")
  java "${args[@]}" "$@"
}

wait_port() {
  local port="$1" pid="$2" deadline=$((SECONDS + 60))
  while (( SECONDS < deadline )); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  return 1
}

start() {
  local port="" dir="" cpus="" flush=0 heap="1g"
  while (($#)); do
    case "$1" in
      --port) port="$2"; shift 2 ;;
      --data-dir) dir="$2"; shift 2 ;;
      --cpus) cpus="$2"; shift 2 ;;
      --flush-every-message) flush=1; shift ;;
      --heap) heap="$2"; shift 2 ;;
      *) die "start: unknown argument $1" ;;
    esac
  done
  [[ -n "$port" && -n "$dir" ]] || die "start needs --port and --data-dir"
  local cport=$((port + 1))
  fetch
  mkdir -p "$dir"
  [[ -z "$(ls -A "$dir")" ]] || die "data dir $dir is not empty"
  dir="$(cd "$dir" && pwd)"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${cport}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${cport}
advertised.listeners=PLAINTEXT://127.0.0.1:${port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${dir}/logs
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  if ((flush)); then
    # Kafka checks this after every append: one fsync per produce batch, the closest
    # equivalent of Sluice's fsync-before-ack.
    echo "log.flush.interval.messages=1" >>"$dir/server.properties"
  fi
  local cluster_id
  cluster_id="$(java_cmd "$dir" 256m kafka.tools.StorageTool random-uuid 2>>"$dir/format.log" | tail -1)"
  java_cmd "$dir" 256m kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
    >>"$dir/format.log" 2>&1 || die "storage format failed, see $dir/format.log"
  local pin=()
  [[ -n "$cpus" ]] && pin=(taskset -c "$cpus")
  local jargs; mapfile -t jargs < <(java_args "$dir" "$heap")
  nohup "${pin[@]}" java "${jargs[@]}" kafka.Kafka "$dir/server.properties" \
    >"$dir/stdout.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/kafka.pid"
  if ! wait_port "$port" "$pid"; then
    kill "$pid" 2>/dev/null || true
    die "broker did not come up on 127.0.0.1:$port; see $dir/kafka.log and $dir/stdout.log"
  fi
  echo "$pid"
}

stop() {
  local pid="" dir=""
  while (($#)); do
    case "$1" in
      --pid) pid="$2"; shift 2 ;;
      --data-dir) dir="$2"; shift 2 ;;
      *) die "stop: unknown argument $1" ;;
    esac
  done
  if [[ -z "$pid" && -n "$dir" ]]; then pid="$(cat "$dir/kafka.pid" 2>/dev/null || true)"; fi
  [[ -n "$pid" ]] || die "stop needs --pid or --data-dir with a kafka.pid"
  kill -0 "$pid" 2>/dev/null || { echo "apache-kafka.sh: $pid not running" >&2; return 0; }
  kill -TERM "$pid"
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  echo "apache-kafka.sh: $pid did not stop in 30 s, killing" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

case "${1:-}" in
  fetch) fetch; echo "$LIBS" ;;
  start) shift; start "$@" ;;
  stop) shift; stop "$@" ;;
  classpath) fetch; echo "$LIBS/*" ;;
  version) echo "$KAFKA_VERSION" ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
