#!/usr/bin/env bash
# Consumer-group figures for the README (issue 4): rebalance time of a 10-member group
# over 100 partitions, and the broker CPU cost of 1,000 OffsetCommit/s.
#
#   scripts/bench-groups.sh                 release build, one shard on cpu 0, bench on cpu 1
#   SLUICE_BIN=path/to/sluice scripts/bench-groups.sh [extra `sluice bench groups` args]
#   DURABILITY=none scripts/bench-groups.sh   the broker's [engine] durability mode
#                                           (group_commit by default; none shows what the
#                                           fdatasync per commit costs)
#
# Starts its own broker (scripts/interop/sluice-broker.sh) with its data in a fresh temp dir,
# stops it by PID and deletes the dir afterwards. Prints the figures; asserts nothing.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
if [ -z "${SLUICE_BIN:-}" ]; then
    (cd "$REPO" && cargo build -q --release --bin sluice)
    SLUICE_BIN="$REPO/target/release/sluice"
fi
export SLUICE_BIN
STATE="$(mktemp -d "${TMPDIR:-/tmp}/bench-groups.XXXXXX")"
CTL="$HERE/interop/sluice-broker.sh"
cleanup() { "$CTL" stop "$STATE" >/dev/null 2>&1 || true; rm -rf "$STATE"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$STATE/template.toml" <<TOML
[engine]
data_dir = "@DATA_DIR@"
# One shard, on cpu 0; the load generator runs on cpu 1.
cores = [0]
durability = { mode = "${DURABILITY:-group_commit}" }

[server]
listeners = "127.0.0.1:@PORT@"
TOML
SLUICE_CONFIG_TEMPLATE="$STATE/template.toml" "$CTL" init "$STATE" "$port"
"$CTL" start "$STATE"
pid="$(cat "$STATE/pid")"
echo "broker pid $pid on 127.0.0.1:$port ($SLUICE_BIN)"
taskset -c 1 "$SLUICE_BIN" bench groups --bootstrap "127.0.0.1:$port" --broker-pid "$pid" "$@"
