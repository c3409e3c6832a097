# Shared body of sluice-cluster.sh and kafka-cluster.sh (sourced, not run). The caller
# defines KIND, PORT_BASE, the port helpers client_port/peer_port/extra_ports, and
#   node_configure ID DIR    write the node's config into DIR (called once, at `start`)
#   cluster_prepare WORKDIR  one-time work after all configs exist (e.g. format storage)
#   node_exec ID DIR         print the command line (one word per line) that runs the node
# Then it calls `cluster_main "$@"`.
#
# Layout: WORKDIR/node<ID>/{data/, config, pid, broker.log}. The current workdir of a
# cluster is remembered in ${TMPDIR:-/tmp}/sluice-cluster-$KIND-$PORT_BASE.dir (a port
# base identifies a cluster: two clusters cannot share ports), or given as CLUSTER_DIR.
#
# Network cut: each node runs in its own cgroup (v2) and `cut ID` adds iptables rules on
# lo that drop (1) every packet the node's processes send, matched by that cgroup, and (2)
# every packet to or from the node's listening ports. Port rules alone cannot isolate a
# node: the connections it opens to its peers leave from ephemeral ports; the cgroup
# match catches those. A network namespace would isolate too, but every node must stay
# reachable at 127.0.0.1:<port> with the config format the brokers use, and traffic stays
# on loopback. The rules live in one chain per cluster (SLUICECUT-<port base>), jumped to
# from INPUT and OUTPUT for lo only, so nobody else's traffic is touched; `heal`, `stop`
# and the trap of a timed `cut ID --for S` remove them.
set -euo pipefail

NODES=(1 2 3)
STATE_PTR="${TMPDIR:-/tmp}/sluice-cluster-$KIND-$PORT_BASE.dir"
CHAIN="SLUICECUT-$PORT_BASE"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-120}"
STOP_GRACE_S="${STOP_GRACE_S:-20}"
HERE_LIB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { echo "$KIND-cluster: $*" >&2; exit 1; }
log() { echo "$KIND-cluster: $*" >&2; }

workdir() {
    local dir="${CLUSTER_DIR:-}"
    [[ -n "$dir" ]] || dir="$(cat "$STATE_PTR" 2>/dev/null || true)"
    [[ -n "$dir" && -d "$dir" ]] || die "no cluster: run start <workdir> first (or set CLUSTER_DIR)"
    echo "$dir"
}

node_dir() { echo "$(workdir)/node$1"; }

check_id() {
    [[ "${1:-}" =~ ^[1-3]$ ]] || die "node id must be 1, 2 or 3 (got '${1:-}')"
}

bootstrap() {
    local out="" i
    for i in "${NODES[@]}"; do out+="${out:+,}127.0.0.1:$(client_port "$i")"; done
    echo "$out"
}

pid_of() { cat "$(node_dir "$1")/pid" 2>/dev/null || true; }

alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

wait_gone() { # pid seconds
    local deadline=$((SECONDS + $2))
    while alive "$1" && ((SECONDS < deadline)); do sleep 0.05; done
    ! alive "$1"
}

# ---------------------------------------------------------------- cgroups
# The cgroup v2 hierarchy (mounted at /sys/fs/cgroup on a plain Debian 12, at
# /sys/fs/cgroup/unified on hybrid hosts); empty when there is none or we may not use it.
cgroup_root() {
    local root
    # mountinfo: optional fields vary in number; the fs type follows the "-" separator.
    root="$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2" && $4 == "/") { print $5; exit } break } }' /proc/self/mountinfo)"
    [[ -n "$root" && -w "$root" ]] && echo "$root"
    return 0
}

cgroup_rel() { echo "sluicecut-$KIND-$PORT_BASE/node$1"; }

cgroup_dir() { # prints the node's cgroup dir, creating it; empty when unavailable
    local root; root="$(cgroup_root)"
    [[ -n "$root" ]] || return 0
    mkdir -p "$root/$(cgroup_rel "$1")" 2>/dev/null && echo "$root/$(cgroup_rel "$1")"
    return 0
}

cgroup_cleanup() {
    local root i; root="$(cgroup_root)"
    [[ -n "$root" && -d "$root/sluicecut-$KIND-$PORT_BASE" ]] || return 0
    for i in "${NODES[@]}"; do rmdir "$root/$(cgroup_rel "$i")" 2>/dev/null || true; done
    rmdir "$root/sluicecut-$KIND-$PORT_BASE" 2>/dev/null || true
}

# ---------------------------------------------------------------- nodes
launch() { # id: start the node in the background, record its pid
    local id="$1" dir cg cmd
    dir="$(node_dir "$id")"
    mapfile -t cmd < <(node_exec "$id" "$dir")
    cg="$(cgroup_dir "$id")"
    echo "=== start $(date -u +%FT%T.%3NZ)" >>"$dir/broker.log"
    # The child enters the node's cgroup before exec, so every thread it ever has is in it.
    CG="$cg" nohup sh -c '[ -z "$CG" ] || echo $$ > "$CG/cgroup.procs"; exec "$@"' sh "${cmd[@]}" \
        >>"$dir/broker.log" 2>&1 </dev/null &
    echo $! >"$dir/pid"
}

wait_ready() { # ids...: every node answers ApiVersions and sees 3 brokers
    local addrs="" i
    for i in "$@"; do
        alive "$(pid_of "$i")" || { tail -30 "$(node_dir "$i")/broker.log" >&2; die "node $i exited during start-up"; }
        addrs+="${addrs:+,}127.0.0.1:$(client_port "$i")"
    done
    python3 "$HERE_LIB/probe.py" wait --bootstrap "$addrs" --brokers "${#NODES[@]}" --timeout "$READY_TIMEOUT_S" \
        || die "not ready after ${READY_TIMEOUT_S} s (logs: $(workdir)/node*/broker.log)"
}

stop_node() { # id: TERM, then KILL after the grace period
    local id="$1" pid; pid="$(pid_of "$id")"
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" "$STOP_GRACE_S" || { log "node $id (pid $pid) ignored TERM for ${STOP_GRACE_S} s: KILL"; kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 10 || true; }
    fi
    rm -f "$(node_dir "$id")/pid"
}

cmd_start() {
    local dir="${1:-}" i
    [[ -n "$dir" ]] || die "usage: start <workdir>"
    if [[ -f "$STATE_PTR" ]]; then
        local old; old="$(cat "$STATE_PTR")"
        for i in "${NODES[@]}"; do
            if alive "$(cat "$old/node$i/pid" 2>/dev/null || true)"; then die "a cluster on port base $PORT_BASE is running from $old: stop it first"; fi
        done
    fi
    mkdir -p "$dir"
    [[ -z "$(ls -A "$dir")" ]] || die "workdir $dir is not empty"
    dir="$(cd "$dir" && pwd)"
    echo "$dir" >"$STATE_PTR"
    for i in "${NODES[@]}"; do
        mkdir -p "$dir/node$i/data"
        node_configure "$i" "$dir/node$i"
    done
    cluster_prepare "$dir"
    # A failed start leaves nothing running.
    trap 'for n in "${NODES[@]}"; do stop_node "$n"; done; cgroup_cleanup' EXIT
    for i in "${NODES[@]}"; do launch "$i"; done
    wait_ready "${NODES[@]}"
    trap - EXIT
    log "3 brokers up from $dir: $(bootstrap)"
}

cmd_kill() {
    check_id "${1:-}"
    local pid; pid="$(pid_of "$1")"
    alive "$pid" || die "node $1 is not running"
    kill -KILL "$pid"
    wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
    rm -f "$(node_dir "$1")/pid"
    log "node $1 (pid $pid) killed"
}

cmd_restart() {
    check_id "${1:-}"
    stop_node "$1"
    launch "$1"
    wait_ready "$1"
    log "node $1 restarted (pid $(pid_of "$1"))"
}

cmd_stop() {
    local dir i; dir="$(workdir)"
    heal_all
    # TERM every node at once: a KRaft node stopped last waits for a controller quorum
    # that is already gone, so one at a time the last one always runs into the KILL.
    local pids=() pid
    for i in "${NODES[@]}"; do
        pid="$(pid_of "$i")"
        if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); fi
    done
    for pid in "${pids[@]}"; do
        wait_gone "$pid" "$STOP_GRACE_S" || { log "pid $pid ignored TERM for ${STOP_GRACE_S} s: KILL"; kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" 10 || true; }
    done
    for i in "${NODES[@]}"; do rm -f "$(node_dir "$i")/pid"; done
    cgroup_cleanup
    [[ "${KEEP_DATA:-0}" == 1 ]] || for i in "${NODES[@]}"; do rm -rf "$dir/node$i/data"; done
    log "stopped; logs kept in $dir/node*/broker.log${KEEP_DATA:+ (data kept)}"
}

cmd_status() {
    local i pid
    for i in "${NODES[@]}"; do
        pid="$(pid_of "$i")"
        if alive "$pid"; then state="running pid $pid"; else state="down"; fi
        if have_rules "$i"; then state+=", cut"; fi
        echo "node $i 127.0.0.1:$(client_port "$i") $state"
    done
}

# ---------------------------------------------------------------- network cut
need_iptables() {
    command -v iptables >/dev/null || die "iptables not found (apt-get install iptables)"
    iptables -S OUTPUT >/dev/null 2>&1 || die "iptables needs root (CAP_NET_ADMIN)"
}

have_rules() {
    command -v iptables >/dev/null || return 1
    iptables -S "$CHAIN" 2>/dev/null | grep -q -- "--comment \"\\?node$1\\b"
}

ensure_chain() {
    iptables -N "$CHAIN" 2>/dev/null || true
    iptables -C OUTPUT -o lo -j "$CHAIN" 2>/dev/null || iptables -I OUTPUT -o lo -j "$CHAIN"
    iptables -C INPUT -i lo -j "$CHAIN" 2>/dev/null || iptables -I INPUT -i lo -j "$CHAIN"
}

node_ports() { # comma-separated listening ports of a node
    local ports; ports="$(client_port "$1"),$(peer_port "$1")"
    local extra; extra="$(extra_ports "$1")"
    echo "$ports${extra:+,$extra}"
}

cmd_cut() {
    check_id "${1:-}"
    local id="$1" ports cg
    need_iptables
    have_rules "$id" && die "node $id is already cut"
    ports="$(node_ports "$id")"
    ensure_chain
    local tag=(-m comment --comment "node$id")
    iptables -A "$CHAIN" -p tcp -m multiport --dports "$ports" "${tag[@]}" -j DROP
    iptables -A "$CHAIN" -p tcp -m multiport --sports "$ports" "${tag[@]}" -j DROP
    cg="$(cgroup_dir "$id")"
    if [[ -n "$cg" ]] && iptables -A "$CHAIN" -m cgroup --path "$(cgroup_rel "$id")" "${tag[@]}" -j DROP 2>/dev/null; then
        log "node $id cut: ports $ports and everything its cgroup sends on lo dropped"
    else
        log "WARNING node $id cut by ports only ($ports): no cgroup v2 match here, so the connections it opens to peers still work"
    fi
    if [[ "${2:-}" == --for ]]; then
        [[ "${3:-}" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "cut $id --for needs seconds"
        # Sleep in the background and wait: bash runs a trap only after a foreground
        # child returns, but interrupts `wait` at once.
        sleep "$3" &
        local sleeper=$!
        trap 'kill '"$sleeper"' 2>/dev/null; heal_node '"$id"'' EXIT
        trap 'exit 130' INT TERM
        wait "$sleeper" || true
        log "node $id healed after $3 s"
    fi
}

heal_node() {
    local id="$1" rule
    command -v iptables >/dev/null || return 0
    iptables -S "$CHAIN" >/dev/null 2>&1 || return 0
    # Delete this node's rules one by one (each listed as "-A CHAIN ...").
    while rule="$(iptables -S "$CHAIN" | grep -m1 -- "--comment \"\\?node$id\\b")"; do
        eval "iptables ${rule/-A /-D }"
    done
    if [[ -z "$(iptables -S "$CHAIN" | grep -v -- "^-N ")" ]]; then
        iptables -D OUTPUT -o lo -j "$CHAIN" 2>/dev/null || true
        iptables -D INPUT -i lo -j "$CHAIN" 2>/dev/null || true
        iptables -X "$CHAIN" 2>/dev/null || true
    fi
}

heal_all() { local i; for i in "${NODES[@]}"; do heal_node "$i"; done; }

cmd_heal() {
    check_id "${1:-}"
    heal_node "$1"
    log "node $1 healed"
}

usage() {
    cat >&2 <<EOF
usage: $(basename "$0") <command>
  start <workdir>   3 brokers on 127.0.0.1 with fresh data dirs under <workdir>; waits until
                    each answers ApiVersions and its metadata lists 3 brokers
  kill <id>         SIGKILL node <id> (1..3)
  restart <id>      stop node <id> if running (TERM, then KILL), start it, wait until ready
  stop              heal every cut, stop all nodes (TERM, then KILL), delete their data dirs
                    (KEEP_DATA=1 keeps them); logs stay in <workdir>/node*/broker.log
  cut <id> [--for S]  drop node <id>'s loopback traffic (see the header of lib.sh);
                    with --for, heal after S seconds (and on any exit)
  heal <id>         remove node <id>'s cut rules
  bootstrap         print the bootstrap list
  status            one line per node
  pid <id>          print node <id>'s pid (empty when down)
  dir               print the workdir
Ports (PORT_BASE=$PORT_BASE): client $(client_port 1)-$(client_port 3), inter-broker $(peer_port 1)-$(peer_port 3).
EOF
    exit 2
}

cluster_main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        start) cmd_start "$@" ;;
        kill) cmd_kill "$@" ;;
        restart) cmd_restart "$@" ;;
        stop) cmd_stop ;;
        cut) cmd_cut "$@" ;;
        heal) cmd_heal "$@" ;;
        bootstrap) bootstrap ;;
        status) cmd_status ;;
        pid) check_id "${1:-}"; pid_of "$1" ;;
        dir) workdir ;;
        *) usage ;;
    esac
}
