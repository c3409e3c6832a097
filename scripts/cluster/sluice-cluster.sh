#!/usr/bin/env bash
# A 3-broker Sluice cluster on 127.0.0.1 (`sluice serve --config` per broker, 3 controller
# voters). Same commands as kafka-cluster.sh:
#
#   scripts/cluster/sluice-cluster.sh start <workdir> | kill <id> | restart <id> | stop
#                                     | cut <id> [--for S] | heal <id> | bootstrap | status
#
# SLUICE_BIN: the binary (default <repo>/target/release/sluice).
# Ports (PORT_BASE, default 29092): node i serves Kafka on PORT_BASE+i-1, replication on
# PORT_BASE+100+i-1, admin HTTP on PORT_BASE+552+i-1 (29644.. by default).
# SLUICE_ENGINE_EXTRA: TOML lines added under [engine] (e.g. "shards = 1" on a small box).
# SLUICE_CLUSTER_TEMPLATE: a TOML file used instead of the built-in config, with @NODE_ID@,
# @DATA_DIR@, @PORT@, @ADMIN_PORT@, @REPL_PORT@ and @VOTERS@ replaced - for when the config
# layout changes before this script does.
# See scripts/cluster/lib.sh for the layout and the network cut.
set -euo pipefail
KIND=sluice
PORT_BASE="${PORT_BASE:-29092}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SLUICE_BIN="${SLUICE_BIN:-$ROOT/target/release/sluice}"

client_port() { echo $((PORT_BASE + $1 - 1)); }
peer_port() { echo $((PORT_BASE + 100 + $1 - 1)); }
admin_port() { echo $((PORT_BASE + 552 + $1 - 1)); }
extra_ports() { admin_port "$1"; }

voters() {
    local out="" i
    for i in 1 2 3; do out+="${out:+,}$i@127.0.0.1:$(peer_port "$i")"; done
    echo "$out"
}

node_configure() {
    local id="$1" dir="$2"
    if [[ -n "${SLUICE_CLUSTER_TEMPLATE:-}" ]]; then
        sed -e "s#@NODE_ID@#$id#g" -e "s#@DATA_DIR@#$dir/data#g" -e "s#@PORT@#$(client_port "$id")#g" \
            -e "s#@ADMIN_PORT@#$(admin_port "$id")#g" -e "s#@REPL_PORT@#$(peer_port "$id")#g" \
            -e "s#@VOTERS@#$(voters)#g" "$SLUICE_CLUSTER_TEMPLATE" >"$dir/sluice.toml"
        return
    fi
    cat >"$dir/sluice.toml" <<TOML
[engine]
data_dir = "$dir/data"
${SLUICE_ENGINE_EXTRA:-}
[server]
node_id = $id
listeners = "127.0.0.1:$(client_port "$id")"
admin_listener = "127.0.0.1:$(admin_port "$id")"
[cluster]
replication_listener = "127.0.0.1:$(peer_port "$id")"
voters = "$(voters)"
default_replication_factor = 3
min_insync_replicas = 2
TOML
}

cluster_prepare() {
    [[ -x "$SLUICE_BIN" ]] || die "SLUICE_BIN=$SLUICE_BIN is not executable (cargo build --release --bin sluice)"
}

node_exec() {
    printf '%s\n' env "RUST_LOG=${RUST_LOG:-info}" "$SLUICE_BIN" serve --config "$2/sluice.toml"
}

source "$HERE/lib.sh"
cluster_main "$@"
