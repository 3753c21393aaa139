# Helpers shared by testnet/run.sh and the scenarios (sourced, never run on its own).
#
# Everything here talks to the testnet through docker: `ctl <node> <line>` runs
# `ipm ctl` inside a node's container, `wait_until` polls a check with a deadline.

# shellcheck shell=bash

shopt -s extglob

TESTNET_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$TESTNET_DIR/.." && pwd)
COMPOSE_FILE="$TESTNET_DIR/docker-compose.yml"
PROJECT=${IPM_TESTNET_PROJECT:-ipm-testnet}
IMAGE=ipm-testnet:latest
BUILD_DIR=${IPM_TESTNET_TARGET_DIR:-$REPO_DIR/target/testnet}
STAGING_DIR="$BUILD_DIR/image"
# Port the bootstrap listens on (its default).
BOOTSTRAP_PORT=7433
# Every node of docker-compose.yml, and which network each one is on.
NODES=(alice bob carol dave erin)
NET_A_NODES=(alice bob carol)
NET_B_NODES=(dave erin)
# Longest wait for one ctl command.
CTL_TIMEOUT=${IPM_TESTNET_CTL_TIMEOUT:-20}

log() { printf '%s\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
die() {
    printf 'run.sh: %s\n' "$*" >&2
    exit 1
}

# Records a failed check; the scenario goes on only if the caller allows it.
fail() {
    printf '    FAIL: %s\n' "$*" >&2
    return 1
}

# The compose command of this machine: the `docker compose` plugin, or docker-compose.
compose_cmd() {
    if [[ -z ${COMPOSE_BIN:-} ]]; then
        if docker compose version >/dev/null 2>&1; then
            COMPOSE_BIN="docker compose"
        elif command -v docker-compose >/dev/null 2>&1; then
            COMPOSE_BIN="docker-compose"
        else
            die "neither 'docker compose' nor 'docker-compose' is installed"
        fi
    fi
    printf '%s' "$COMPOSE_BIN"
}

# docker compose on the testnet's file and project. The nodes need the bootstrap's
# address; until it is known (bootstrap not started yet, or `down`), a placeholder does.
compose() {
    local bin
    bin=$(compose_cmd)
    if [[ -z ${IPM_BOOTSTRAP_ADDR:-} ]]; then
        IPM_BOOTSTRAP_ADDR=$(bootstrap_addr 2>/dev/null || true)
    fi
    IPM_BOOTSTRAP_ADDR=${IPM_BOOTSTRAP_ADDR:-/dns4/bootstrap/tcp/$BOOTSTRAP_PORT} \
        $bin -p "$PROJECT" -f "$COMPOSE_FILE" "$@"
}

# Container id of a service (running or not); empty when it has no container.
cid() {
    docker ps -aq \
        --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1" | head -n1
}

# Id of one of the project's docker networks (net_a, net_b).
network_id() {
    docker network ls -q \
        --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.network=$1" | head -n1
}

# Docker's name of one of the project's networks.
network_name() {
    local id
    id=$(network_id "$1")
    [[ -n $id ]] || return 1
    docker network inspect -f '{{.Name}}' "$id"
}

# The compose network (net_a, net_b) a node lives on.
home_network() {
    local n
    for n in "${NET_B_NODES[@]}"; do
        [[ $n == "$1" ]] && {
            echo net_b
            return
        }
    done
    echo net_a
}

is_running() {
    local c
    c=$(cid "$1")
    [[ -n $c && $(docker inspect -f '{{.State.Running}}' "$c" 2>/dev/null) == true ]]
}

# The bootstrap's peer id, from the `ipm-bootstrap <version> peer id <id>` line it prints.
bootstrap_peer_id() {
    local c out id
    c=$(cid bootstrap)
    [[ -n $c ]] || return 1
    out=$(docker logs "$c" 2>/dev/null) || return 1
    id=$(sed -n 's/^ipm-bootstrap .* peer id \([1-9A-HJ-NP-Za-km-z]\{40,\}\)$/\1/p' <<<"$out" | tail -n1)
    [[ -n $id ]] || return 1
    printf '%s' "$id"
}

# How many times the bootstrap container has printed its peer id (once per start).
bootstrap_starts() {
    local c out
    c=$(cid bootstrap)
    [[ -n $c ]] || {
        echo 0
        return
    }
    out=$(docker logs "$c" 2>/dev/null) || true
    grep -c '^ipm-bootstrap .* peer id ' <<<"$out" || true
}

# Whether the bootstrap has started more than $1 times.
bootstrap_started_after() { (($(bootstrap_starts) > $1)); }

# The address nodes reach the bootstrap at: its service name on either network.
bootstrap_addr() {
    local id
    id=$(bootstrap_peer_id) || return 1
    printf '/dns4/bootstrap/tcp/%s/p2p/%s' "$BOOTSTRAP_PORT" "$id"
}

# `ctl <node> <line>`: one prompt command (or text to send) run by `ipm ctl` in the node's
# container. Prints the answer; fails like ipm ctl does.
ctl() {
    local node=$1 c
    shift
    c=$(cid "$node")
    [[ -n $c ]] || {
        log "no container for $node"
        return 1
    }
    timeout "$CTL_TIMEOUT" docker exec "$c" /ipm ctl --data-dir /data "$*"
}

# Quietly: the node's /status, or nothing.
status_of() { ctl "$1" /status 2>/dev/null; }

# The node's own peer id, from /status.
peer_id() {
    local out
    out=$(status_of "$1") || return 1
    sed -n 's/^peer id: *//p' <<<"$out" | head -n1
}

# How many other peers the node sees in the lobby (0 when it cannot tell).
lobby_members() {
    local out n
    out=$(status_of "$1") || {
        echo 0
        return
    }
    n=$(sed -n 's/^  lobby (\([0-9]*\) others\{0,1\}).*/\1/p' <<<"$out" | head -n1)
    echo "${n:-0}"
}

# `not <command...>`: succeeds when the command fails (for wait_until).
not() { ! "$@"; }

# Whether node $1 has an open connection to peer id $2.
connected_to() {
    local out
    out=$(status_of "$1") || return 1
    # Connection lines: "  <name> <peer id> <kind> [direct|relayed] <address>".
    grep -Eq "^  [^ ]+ $2 " <<<"$out"
}

# Whether node $1 has a direct (not relayed) connection to peer id $2.
directly_connected_to() {
    local out
    out=$(status_of "$1") || return 1
    local line
    while IFS= read -r line; do
        if [[ $line =~ ^\ \ [^\ ]+\ $2\  && $line != *relayed* && $line != *p2p-circuit* ]]; then
            return 0
        fi
    done <<<"$out"
    return 1
}

# The last 200 lines of one of node $1's conversations, $2: a room (lobby, geo:<cell>,
# interest:<tag>) or the private conversation with a user (`YYYY-MM-DD HH:MM:SS name: text`).
conversation() { ctl "$1" /history "$2" 200 2>/dev/null; }

# The last 100 lobby lines of a node's history.
lobby_history() { ctl "$1" /history lobby 100 2>/dev/null; }

# Whether node $1's conversation $2 has a line by author $3 with text $4. The author may be
# shown as "name#xxxx" (the end of its peer id) while the node has not yet checked that
# the name belongs to it.
said_in() {
    local out line
    out=$(conversation "$1" "$2") || return 1
    while IFS= read -r line; do
        # An own private message ends with its receipt state.
        line=${line% ✓ delivered}
        line=${line% ✓ read}
        if [[ $line == *" $3: $4" || $line == *" $3#"+([!: ])": $4" ]]; then
            return 0
        fi
    done <<<"$out"
    return 1
}

# Whether node $1's lobby history has a line by author $2 with text $3.
history_has() { said_in "$1" lobby "$2" "$3"; }

# How many lines of node $1's conversation $2 end with ": $3".
count_in() {
    local out
    out=$(conversation "$1" "$2") || {
        echo 0
        return
    }
    grep -Fc -- ": $3" <<<"$out" || true
}

# How many lobby lines of node $1 end with ": $2".
history_count() { count_in "$1" lobby "$2"; }

# The node's JSON events so far (its stdout, across restarts of its container).
events_of() {
    local c
    c=$(cid "$1")
    [[ -n $c ]] || return 1
    docker logs "$c" 2>/dev/null
}

# `event_count <node> <event> ['"key":"value"'...]`: how many of the node's events are of
# that kind and contain every given JSON pair (events are compact JSON, one per line).
event_count() {
    local node=$1 kind=$2 out pair
    shift 2
    out=$(events_of "$node" | grep -F -- "\"event\":\"$kind\"") || {
        echo 0
        return
    }
    for pair in "$@"; do
        out=$(grep -F -- "$pair" <<<"$out") || {
            echo 0
            return
        }
    done
    grep -c . <<<"$out"
}

# `has_event <node> <event> [pairs...]`: whether the node has such an event.
has_event() { (($(event_count "$@") > 0)); }

# `has_events <count> <node> <event> [pairs...]`: whether it has at least that many.
has_events() {
    local n=$1
    shift
    (($(event_count "$@") >= n))
}

# `pair <key> <value>`: a JSON string pair as events print it.
pair() { printf '"%s":"%s"' "$1" "$2"; }

# The value of string field $2 in the JSON event line $1.
field() { sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" <<<"$1" | head -n1; }

# How many times text $2 appears in anything node $1 printed (events and logs).
mentions() {
    local c
    c=$(cid "$1")
    [[ -n $c ]] || {
        echo 0
        return
    }
    docker logs "$c" 2>&1 | grep -Fc -- "$2" || true
}

# `absent <text> <node>...`: checks that no given node ever printed the text (no event,
# no log line). Call it only once a later line proved the nodes had time to get it.
absent() {
    local text=$1 node n ok=0
    shift
    for node in "$@"; do
        n=$(mentions "$node" "$text")
        if ((n == 0)); then
            info "$node never saw it"
        else
            fail "$node saw it ($n times): $(docker logs "$(cid "$node")" 2>&1 | grep -F -- "$text" | head -n3 || true)"
            ok=1
        fi
    done
    return $ok
}

# `private <from> <to> <text>`: sends a private message; prints the node's answer
# ("delivered to …" or "… queued …"). Fails when the node refused the command.
private() {
    local out
    out=$(ctl "$1" "/msg $2 $3") || {
        fail "$1 could not send a private message to $2: $out"
        return 1
    }
    info "$1 -> $2: $out"
    printf '%s' "$out"
}

# `all_once <node> <conversation> <author> <text>...`: checks that each text is in the
# node's conversation and among its `direct` events exactly once.
all_once() {
    local node=$1 conv=$2 author=$3 text lines events ok=0
    shift 3
    for text in "$@"; do
        lines=$(count_in "$node" "$conv" "$text")
        events=$(event_count "$node" direct "$(pair text "$text")")
        if ((lines == 1 && events == 1)); then
            info "$node has $author's '$text' exactly once"
        else
            fail "$node has $author's '$text' $lines times in /history $conv and in $events direct events"
            ok=1
        fi
    done
    return $ok
}

# `queued_reply <answer>`: whether /msg answered that the message waits.
queued_reply() { [[ $1 == *"not reachable now: queued"* ]]; }

# Makes the lobby every node's current room again and leaves the location group and the
# given rooms (a scenario about groups cleans up with it, so later lines go to the lobby).
back_to_lobby() {
    local node room
    for node in "${NODES[@]}"; do
        is_running "$node" || continue
        ctl "$node" /leave geo >/dev/null 2>&1 || true
        for room in "$@"; do
            ctl "$node" /leave "$room" >/dev/null 2>&1 || true
        done
        ctl "$node" /join lobby >/dev/null 2>&1 || log "  could not make the lobby $node's current room"
    done
}

# Sends a lobby line from a node and checks the node accepted it.
say() {
    local node=$1 text=$2 out
    out=$(ctl "$node" "$text") || {
        fail "$node could not send '$text': $out"
        return 1
    }
    if [[ $out != sent\ * ]]; then
        fail "$node answered '$out' instead of 'sent ...'"
        return 1
    fi
    info "$node: $out"
}

# A text no other run or scenario uses.
unique() { printf '%s-%s-%s' "$1" "$(date +%s%N | tail -c 8)" "$RANDOM"; }

# `poll_until <seconds> <command...>`: runs the command every half second until it succeeds
# (returns 0) or the deadline passes (returns 1). Silent; sets POLL_MS to the time taken.
poll_until() {
    local seconds=$1 start now
    shift
    start=$(date +%s%N)
    local deadline=$((start + seconds * 1000000000))
    while true; do
        if "$@" >/dev/null 2>&1; then
            POLL_MS=$((($(date +%s%N) - start) / 1000000))
            return 0
        fi
        now=$(date +%s%N)
        if ((now >= deadline)); then
            POLL_MS=$(((now - start) / 1000000))
            return 1
        fi
        sleep 0.5
    done
}

# `wait_until <seconds> <what> <command...>`: runs the command every half second until it
# succeeds (returns 0) or the deadline passes (returns 1, saying what did not happen).
wait_until() {
    local seconds=$1 what=$2 start now
    shift 2
    start=$(date +%s%N)
    local deadline=$((start + seconds * 1000000000)) told=0
    while true; do
        if "$@" >/dev/null 2>&1; then
            now=$(date +%s%N)
            info "ok after $(((now - start) / 1000000)) ms: $what"
            return 0
        fi
        now=$(date +%s%N)
        if ((now >= deadline)); then
            fail "not within ${seconds}s: $what"
            return 1
        fi
        if ((!told && now - start > 5000000000)); then
            info "waiting (up to ${seconds}s): $what"
            told=1
        fi
        sleep 0.5
    done
}

# A node is ready when its container runs, `ipm ctl /status` answers, it is connected to
# the bootstrap (peer id $2) and it sees at least one other peer in the lobby.
node_ready() {
    is_running "$1" && connected_to "$1" "$2" && (($(lobby_members "$1") >= 1))
}

# Waits for every given node (default: all) to be ready.
wait_ready() {
    local seconds=$1 node boot
    shift
    local nodes=("$@")
    ((${#nodes[@]})) || nodes=("${NODES[@]}")
    wait_until 30 "the bootstrap runs and printed its peer id" bootstrap_peer_id || return 1
    boot=$(bootstrap_peer_id)
    for node in "${nodes[@]}"; do
        wait_until "$seconds" "$node is up, connected to the bootstrap and in the lobby with others" \
            node_ready "$node" "$boot" || return 1
    done
}

# Puts the testnet back as docker-compose.yml describes it after a scenario that failed
# half-way: every container running, every node on its network.
restore_testnet() {
    local svc c net
    for svc in bootstrap "${NODES[@]}"; do
        c=$(cid "$svc")
        [[ -n $c ]] || continue
        if [[ $svc != bootstrap ]]; then
            net=$(network_name "$(home_network "$svc")") || continue
            local nets
            nets=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}} {{$k}} {{end}}' "$c")
            if [[ $nets != *" $net "* ]]; then
                log "  restoring: reconnecting $svc to $net"
                docker network connect --alias "$svc" "$net" "$c" || true
            fi
        fi
        if ! is_running "$svc"; then
            log "  restoring: starting $svc"
            docker start "$c" >/dev/null || true
        fi
    done
    # A scenario about groups may have left another room current: say goes to the lobby.
    for svc in "${NODES[@]}"; do
        poll_until 30 ctl "$svc" /join lobby || log "  restoring: $svc did not go back to the lobby"
    done
}

# Scenarios register themselves: `scenario <name> <one line saying what it checks>`.
SCENARIOS=()
declare -A SCENARIO_DOC=()
scenario() {
    SCENARIOS+=("$1")
    SCENARIO_DOC[$1]=$2
}

load_scenarios() {
    local f
    for f in "$TESTNET_DIR"/scenarios/*.sh; do
        # shellcheck source=/dev/null
        source "$f"
    done
}
