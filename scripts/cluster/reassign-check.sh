#!/usr/bin/env bash
# Starts a 3-broker Sluice cluster (scripts/cluster/sluice-cluster.sh, SLUICE_BIN), runs
# the franz-go reassignment / preferred-election check (scripts/cluster/reassign) against
# it, and stops the cluster (by PID, data deleted) whatever the outcome.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-reassign.XXXXXX")"
cleanup() { "$here/sluice-cluster.sh" stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
"$here/sluice-cluster.sh" start "$work/cluster"
bootstrap="$("$here/sluice-cluster.sh" bootstrap)"
(cd "$here/reassign" && go build -o "$work/reassign-check" .)
timeout 120 "$work/reassign-check" -bootstrap "$bootstrap"
