#!/usr/bin/env bash
# Real-client interop suite: librdkafka (confluent-kafka), kafka-python, the Apache Kafka
# Java client and franz-go against a real broker. Installs its own pinned clients (venv,
# Maven, Go modules).
#
#   scripts/interop/run.sh                      build and test `sluice serve` (default)
#   SLUICE_BIN=path/to/sluice scripts/interop/run.sh
#   BROKER=kafka scripts/interop/run.sh         test Apache Kafka 4.x (the reference)
#   BROKER=external BOOTSTRAP=host:port scripts/interop/run.sh
#                                               test a running broker (no SIGKILL test)
#   extra arguments go to pytest, e.g.  scripts/interop/run.sh -k seek
#   INTEROP_KNOWN_FAILURES=<file>  (opt-in) run the tests listed there ("<test id> # reason")
#                                  as strict xfail (see tests/conftest.py)
#
# INTEROP_WORK (default <repo>/target/interop) holds the venv and the Java build; the broker's
# data dir and log go to a fresh ${TMPDIR:-/tmp}/interop-<broker>.XXXXXX (printed when the suite starts);
# after a passing run only the log is kept there.
# Exits non-zero when any test fails.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
WORK="${INTEROP_WORK:-$REPO/target/interop}"
BROKER="${BROKER:-sluice}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$WORK"
log() { echo "[interop] $*" >&2; }

# ---- Python clients (pinned) ----
VENV="$WORK/venv"
REQ_STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$REQ_STAMP" 2>/dev/null)" != "$want" ]; then
    log "installing Python clients into $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt"
    echo "$want" > "$REQ_STAMP"
fi

# ---- Java client driver (Maven; offline when the local repository already has everything) ----
log "building the Java driver"
if ! mvn -B -q -Dstyle.color=never -o -f "$HERE/java/pom.xml" -Dinterop.build.dir="$WORK/java" package >"$WORK/mvn-java.log" 2>&1; then
    mvn -B -q -Dstyle.color=never -f "$HERE/java/pom.xml" -Dinterop.build.dir="$WORK/java" package >"$WORK/mvn-java.log" 2>&1 \
        || { cat "$WORK/mvn-java.log" >&2; log "Java driver build failed"; exit 1; }
fi
export INTEROP_JAVA_CP="$WORK/java/interop-java-driver-0.jar:$WORK/java/lib/*"

# ---- franz-go driver (Go modules from the module proxy, pinned in go/go.mod + go.sum) ----
log "building the franz-go driver"
(cd "$HERE/go" && go build -o "$WORK/franzgo" .) || { log "franz-go driver build failed"; exit 1; }
export INTEROP_FRANZGO="$WORK/franzgo"

# ---- broker ----
free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
STATE=""
CTL=""
# Silent, so pytest's summary ("N passed, M failed") stays the last line CI reads.
cleanup() {
    local rc=$?
    if [ -n "$CTL" ] && [ -n "$STATE" ]; then
        "$CTL" stop "$STATE" >/dev/null 2>&1 || true
        # A passing run keeps only the broker's log: each run's data is hundreds of MB and
        # repeated runs filled the disk. A failing run keeps everything for inspection.
        if [ "$rc" -eq 0 ]; then rm -rf "$STATE/data"; fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

case "$BROKER" in
    external)
        [ -n "${BOOTSTRAP:-}" ] || { log "BROKER=external needs BOOTSTRAP=host:port"; exit 2; }
        export INTEROP_BOOTSTRAP="$BOOTSTRAP"
        unset INTEROP_BROKER_CTL INTEROP_BROKER_STATE
        ;;
    sluice|kafka)
        if [ "$BROKER" = sluice ]; then
            if [ -z "${SLUICE_BIN:-}" ]; then
                log "building sluice (cargo build --bin sluice)"
                (cd "$REPO" && cargo build -q --bin sluice)
                SLUICE_BIN="$REPO/target/debug/sluice"
            fi
            export SLUICE_BIN
            CTL="$HERE/sluice-broker.sh"
        else
            CTL="$HERE/kafka-broker.sh"
            "$CTL" fetch
        fi
        # Broker state outside the shared target/ tree; kept after the run for its log.
        STATE="$(mktemp -d "${TMPDIR:-/tmp}/interop-$BROKER.XXXXXX")"
        port="$(free_port)"
        if [ "$BROKER" = sluice ]; then
            # Its own admin port: another broker on this machine may hold the default.
            "$CTL" init "$STATE" "$port" "$(free_port)"
        else
            "$CTL" init "$STATE" "$port"
        fi
        log "starting $BROKER on 127.0.0.1:$port (state $STATE)"
        "$CTL" start "$STATE"
        export INTEROP_BOOTSTRAP="127.0.0.1:$port" INTEROP_BROKER_CTL="$CTL" INTEROP_BROKER_STATE="$STATE"
        ;;
    *) log "BROKER must be sluice, kafka or external"; exit 2 ;;
esac

if [ -n "${INTEROP_KNOWN_FAILURES:-}" ]; then
    export INTEROP_KNOWN_FAILURES="$(realpath "$INTEROP_KNOWN_FAILURES")"
    log "known failures from $INTEROP_KNOWN_FAILURES are run as strict xfail"
fi
log "running the suite against $BROKER at $INTEROP_BOOTSTRAP${STATE:+ (broker log: $STATE/broker.log)}"
set +e
(cd "$HERE/tests" && "$VENV/bin/python" -m pytest -p no:cacheprovider --timeout=300 -rfEs --show-capture=no \
    --junitxml="$WORK/results-$BROKER.xml" "$@")
status=$?
set -e
exit "$status"
