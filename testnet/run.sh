#!/usr/bin/env bash
# The ipm testnet: a bootstrap and five nodes in docker, on two networks that share nothing
# but the bootstrap. `testnet/run.sh` builds, starts, runs every scenario, tears down and
# ends with "N passed, N failed". `testnet/run.sh help` lists the other commands.
set -euo pipefail

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
# shellcheck source=testnet/lib.sh
source "$(dirname "$SELF")/lib.sh"
load_scenarios

SCENARIO_TIMEOUT=${IPM_TESTNET_SCENARIO_TIMEOUT:-300}
READY_TIMEOUT=${IPM_TESTNET_READY_TIMEOUT:-90}
TARGET=x86_64-unknown-linux-gnu

usage() {
    cat <<EOF
usage: testnet/run.sh [command]

  (no command)         build, start the testnet, run every scenario, tear down; the last
                       line is "N passed, N failed" and the exit code is non-zero on failure
  test [scenario...]   the same, for the named scenarios only
  up                   build and start the testnet, and leave it running
  down                 stop the testnet and delete its containers, networks and volumes
  scenario <name>...   run scenarios against the testnet started by 'up' (no build, no teardown)
  list                 list the scenarios
  attach <node>        chat as a node: every line you type is sent with 'ipm ctl' (text goes
                       to the current room, /commands work: /status, /history, /join ...),
                       and the node's events are printed as they come; Ctrl-D or /detach leaves,
                       /quit stops the node
  ctl <node> <line>    one 'ipm ctl' command against a node, e.g. ctl bob /history lobby 5
  logs [-f] [service]  output of the testnet (JSON events on stdout, logs on stderr)
  ps                   the testnet's containers
  help                 this text

Nodes: ${NODES[*]} (alice bob carol on net_a, dave erin on net_b);
the bootstrap is on both networks.

Environment:
  IPM_TESTNET_NO_BUILD=1             skip cargo build: use the binaries built last time
  IPM_TESTNET_TARGET_DIR=DIR         cargo target dir of the static build (target/testnet)
  IPM_TESTNET_KEEP=1                 leave the testnet running after 'test' (then: run.sh down)
  IPM_TESTNET_SCENARIO_TIMEOUT=300   seconds one scenario may take
  IPM_TESTNET_PARTITION_SECS=20      how long partition_heal keeps erin cut off
  IPM_TESTNET_PROJECT=ipm-testnet    compose project name; a second testnet on the same
  IPM_TESTNET_NET_A=10.77.1.0/24     docker engine needs another name and other subnets
  IPM_TESTNET_NET_B=10.77.2.0/24
  IPM_RUST_LOG=info                  log filter of every container (RUST_LOG syntax)

Scenarios:
EOF
    list_scenarios
}

list_scenarios() {
    local name
    for name in "${SCENARIOS[@]}"; do
        printf '  %-20s %s\n' "$name" "${SCENARIO_DOC[$name]}"
    done
}

elapsed() { echo $(($(date +%s) - $1)); }

# Static binaries, staged with an empty data folder as the image's build context.
build() {
    local bin_dir="$BUILD_DIR/$TARGET/release" bin start
    if [[ ${IPM_TESTNET_NO_BUILD:-} == 1 ]]; then
        log "== skipping cargo build (IPM_TESTNET_NO_BUILD=1)"
    else
        start=$(date +%s)
        log "== building static binaries in $BUILD_DIR (the first build takes a while)"
        (
            cd "$REPO_DIR"
            RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR="$BUILD_DIR" \
                cargo build --release --target "$TARGET" --bin ipm --bin ipm-bootstrap
        ) || die "cargo build failed"
        log "   built in $(elapsed "$start")s"
    fi
    rm -rf "$STAGING_DIR"
    mkdir -p "$STAGING_DIR/data"
    # ipm refuses a data dir other users can write, whatever the host's umask.
    chmod 700 "$STAGING_DIR/data"
    for bin in ipm ipm-bootstrap; do
        [[ -x $bin_dir/$bin ]] || die "$bin_dir/$bin is missing: build without IPM_TESTNET_NO_BUILD"
        if command -v readelf >/dev/null && [[ $(readelf -l "$bin_dir/$bin") == *INTERP* ]]; then
            die "$bin_dir/$bin is dynamically linked; the image has no libraries"
        fi
        # Without debug info the binaries are five times smaller; symbols stay.
        objcopy --strip-debug "$bin_dir/$bin" "$STAGING_DIR/$bin" 2>/dev/null ||
            cp "$bin_dir/$bin" "$STAGING_DIR/$bin"
    done
    log "== building image $IMAGE"
    local out
    out=$(docker build -q -t "$IMAGE" -f "$TESTNET_DIR/Dockerfile" "$STAGING_DIR" 2>&1) || {
        log "$out"
        die "docker build failed"
    }
}

# Last lines of every container's output, to see why something did not start.
dump_logs() {
    local svc c
    for svc in bootstrap "${NODES[@]}"; do
        c=$(cid "$svc")
        [[ -n $c ]] || continue
        log "---- $svc ($(docker inspect -f '{{.State.Status}} exit={{.State.ExitCode}}' "$c"))"
        docker logs --tail 15 "$c" 2>&1 | sed 's/^/     /' >&2 || true
    done
}

teardown() {
    log "== tearing down"
    compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
}

# Starts the bootstrap, learns its peer id, starts the nodes with its address, and waits
# until every node is in the lobby with others.
start_testnet() {
    local start
    start=$(date +%s)
    # Leftovers of an earlier run that did not finish would clash with this one.
    compose down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true
    log "== starting the bootstrap"
    compose up -d --no-build bootstrap >/dev/null 2>&1 || {
        compose up -d --no-build bootstrap || true
        log "the bootstrap did not start"
        return 1
    }
    wait_until 30 "the bootstrap printed its peer id" bootstrap_peer_id || {
        dump_logs
        return 1
    }
    IPM_BOOTSTRAP_ADDR=$(bootstrap_addr)
    export IPM_BOOTSTRAP_ADDR
    log "   bootstrap: $IPM_BOOTSTRAP_ADDR"
    log "== starting ${NODES[*]}"
    compose up -d --no-build "${NODES[@]}" >/dev/null 2>&1 || {
        compose up -d --no-build "${NODES[@]}" || true
        log "the nodes did not start"
        return 1
    }
    wait_ready "$READY_TIMEOUT" || {
        dump_logs
        return 1
    }
    log "   testnet ready in $(elapsed "$start")s"
}

# Stops the scenario running, if any (on Ctrl-C or SIGTERM).
SCENARIO_PID=
stop_scenario() {
    if [[ -n $SCENARIO_PID ]]; then
        kill -TERM "$SCENARIO_PID" 2>/dev/null || true
        wait "$SCENARIO_PID" 2>/dev/null || true
        SCENARIO_PID=
    fi
}

# Runs one scenario in its own process, bounded in time. Returns its result.
run_scenario() {
    local name=$1 start rc
    start=$(date +%s)
    log ""
    log "=== $name: ${SCENARIO_DOC[$name]}"
    # In the background, so that Ctrl-C stops it at once (see stop_scenario).
    timeout -k 10 "$SCENARIO_TIMEOUT" bash "$SELF" _scenario "$name" &
    SCENARIO_PID=$!
    set +e
    wait "$SCENARIO_PID"
    rc=$?
    set -e
    SCENARIO_PID=
    if ((rc == 0)); then
        log "--- PASS $name ($(elapsed "$start")s)"
        return 0
    fi
    if ((rc == 124)); then
        log "--- FAIL $name: took longer than ${SCENARIO_TIMEOUT}s ($(elapsed "$start")s)"
    else
        log "--- FAIL $name ($(elapsed "$start")s)"
    fi
    # Leave a usable testnet to the next scenario.
    restore_testnet
    wait_ready "$READY_TIMEOUT" >/dev/null 2>&1 || log "  (the testnet did not recover)"
    return 1
}

# Runs scenarios (all by default); prints the failed ones and returns how many failed.
run_scenarios() {
    local names=("$@") name passed=0 failed=0 failed_names=() start
    ((${#names[@]})) || names=("${SCENARIOS[@]}")
    start=$(date +%s)
    for name in "${names[@]}"; do
        if run_scenario "$name"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            failed_names+=("$name")
        fi
    done
    log ""
    log "scenarios ran in $(elapsed "$start")s"
    ((failed == 0)) || log "failed: ${failed_names[*]}"
    RESULT="$passed passed, $failed failed"
    return "$failed"
}

check_names() {
    local name known
    for name in "$@"; do
        known=0
        for s in "${SCENARIOS[@]}"; do [[ $s == "$name" ]] && known=1; done
        ((known)) || die "no scenario '$name' (run.sh list shows them)"
    done
}

check_node() {
    local n
    for n in "${NODES[@]}"; do [[ $n == "$1" ]] && return 0; done
    die "no node '$1' (nodes: ${NODES[*]})"
}

cmd_test() {
    check_names "$@"
    local start rc=0 summary
    start=$(date +%s)
    if [[ ${IPM_TESTNET_KEEP:-} != 1 ]]; then
        trap 'teardown' EXIT
    fi
    trap 'stop_scenario; exit 130' INT TERM
    local total=$#
    ((total)) || total=${#SCENARIOS[@]}
    if ! (build); then
        log "the build failed: no scenario ran"
        summary="0 passed, $total failed"
        rc=1
    elif start_testnet; then
        RESULT=""
        run_scenarios "$@" || rc=1
        summary=$RESULT
    else
        log "the testnet did not start"
        summary="0 passed, $total failed"
        rc=1
    fi
    if [[ ${IPM_TESTNET_KEEP:-} != 1 ]]; then
        teardown
        trap - EXIT
    else
        log "== the testnet is still running (IPM_TESTNET_KEEP=1); stop it with: $0 down"
    fi
    log "total $(elapsed "$start")s"
    echo "$summary"
    return "$rc"
}

cmd_up() {
    build
    start_testnet || {
        log "the testnet did not start; tearing down"
        teardown
        exit 1
    }
    cat <<EOF

The testnet runs. Try:
  $0 attach alice          chat as alice (Ctrl-D leaves)
  $0 ctl dave /history     dave's lobby history
  $0 logs -f bob           bob's events and logs
  $0 scenario lobby_reaches_all
  $0 down                  stop and delete everything
EOF
}

# Prints a node's JSON events readably (raw when jq is missing).
render_events() {
    if command -v jq >/dev/null; then
        jq -R --unbuffered -r '
            (try fromjson catch null) as $e
            | if $e == null then .
              elif $e.event == "message" then "[\($e.room)] \($e.from): \($e.text)"
              elif $e.event == "connected" then "* connected to \($e.peer) at \($e.addr)"
              elif $e.event == "disconnected" then "* disconnected from \($e.peer)"
              elif $e.event == "error" then "! \($e.message)"
              else "* \($e.event) \($e | del(.event, .ts) | tostring)"
              end'
    else
        cat
    fi
}

cmd_attach() {
    local node=${1:-}
    [[ -n $node ]] || die "usage: run.sh attach <node>"
    check_node "$node"
    local c
    c=$(cid "$node")
    is_running "$node" || die "$node is not running (start the testnet with: $0 up)"
    docker exec "$c" /ipm ctl --data-dir /data /status || true
    cat <<EOF

attached to $node: a line of text goes to the current room; /help lists the commands.
Ctrl-D or /detach leaves (the node keeps running); /quit stops the node.
EOF
    # The node's new events, printed while you type.
    local events
    exec {events}< <(docker logs -f --tail 0 "$c" 2>/dev/null)
    ATTACH_PIDS=$!
    render_events <&"$events" &
    ATTACH_PIDS+=" $!"
    trap 'kill $ATTACH_PIDS 2>/dev/null || true' EXIT
    local line
    while IFS= read -r -e -p "$node> " line; do
        [[ -z ${line// /} ]] && continue
        [[ $line == /detach ]] && break
        history -s -- "$line"
        docker exec "$c" /ipm ctl --data-dir /data "$line" || true
    done
    echo
}

main() {
    local cmd=${1:-test}
    (($#)) && shift
    case $cmd in
    test) cmd_test "$@" ;;
    up) cmd_up ;;
    down) teardown ;;
    scenario)
        (($#)) || die "usage: run.sh scenario <name>..."
        check_names "$@"
        IPM_BOOTSTRAP_ADDR=$(bootstrap_addr) || die "the testnet is not running (start it with: $0 up)"
        export IPM_BOOTSTRAP_ADDR
        trap 'stop_scenario; exit 130' INT TERM
        local rc=0
        run_scenarios "$@" || rc=1
        echo "$RESULT"
        return "$rc"
        ;;
    list) list_scenarios ;;
    attach) cmd_attach "$@" ;;
    ctl)
        (($# >= 2)) || die "usage: run.sh ctl <node> <command>"
        check_node "$1"
        ctl "$@"
        ;;
    logs)
        local follow=()
        if [[ ${1:-} == -f ]]; then
            follow=(-f)
            shift
        fi
        compose logs --no-color "${follow[@]}" "$@"
        ;;
    ps) compose ps ;;
    help | -h | --help) usage ;;
    _scenario)
        # One scenario, run by run_scenario in a process of its own.
        set -E
        trap '[[ $BASH_COMMAND == return* ]] ||
            printf "    FAIL: %s (line %s) failed\n" "$BASH_COMMAND" "$LINENO" >&2' ERR
        "$1"
        ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
