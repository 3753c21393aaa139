# Location and interest groups: a line reaches the members and nobody else.
# shellcheck shell=bash

# Radius of the location group every node joins, in km.
GEO_RADIUS=10

# Whether the "members of …" line of node $1's /status names every further node.
members_include() {
    local node=$1 out line name
    shift
    out=$(status_of "$node") || return 1
    line=$(grep '^members of ' <<<"$out") || return 1
    for name in "$@"; do
        [[ $line == *"$name"* ]] || return 1
    done
}

# The group's room ("geo:u09t") in the answer to /join-geo.
group_room() { sed -n 's/.*: \(geo:[0-9a-z]*\) and [0-9]* neighbouring cell.*/\1/p' <<<"$1"; }

scenario geo_group "everyone joins a ${GEO_RADIUS} km location group: alice's line reaches bob and dave (same part of Paris, dave on net_b) and neither erin (26 km away, its group's cells include alice's) nor carol (London)"
geo_group() {
    local rc=0
    geo_group_checks || rc=1
    back_to_lobby
    return $rc
}

geo_group_checks() {
    local node out room text marker ok=0
    declare -A rooms=()
    for node in "${NODES[@]}"; do
        out=$(ctl "$node" /join-geo "$GEO_RADIUS") || {
            fail "$node could not join the location group: $out"
            return 1
        }
        rooms[$node]=$(group_room "$out")
        info "$node: ${rooms[$node]:-?} ($out)"
    done
    room=${rooms[alice]}
    [[ -n $room ]] || {
        fail "no room in alice's answer to /join-geo"
        return 1
    }
    for node in bob dave; do
        if [[ ${rooms[$node]} != "$room" ]]; then
            fail "$node's location group is ${rooms[$node]}, alice's is $room"
            ok=1
        fi
    done
    # Presence tells who is within the radius; once alice counts bob and dave, the rooms
    # are joined on both networks.
    wait_until 30 "alice's location group lists bob and dave" members_include alice bob dave || ok=1
    wait_until 30 "dave's location group lists alice" members_include dave alice || ok=1
    ((ok == 0)) || return 1
    out=$(status_of alice | grep '^members of ' || true)
    info "alice: $out"
    if [[ $out == *carol* || $out == *erin* ]]; then
        fail "alice's location group counts someone beyond ${GEO_RADIUS} km"
        ok=1
    fi

    text=$(unique geo-line-from-alice)
    say alice "$text" || return 1
    wait_until 10 "alice's own $room history has the line" said_in alice "$room" alice "$text" || ok=1
    for node in bob dave; do
        wait_until 30 "$node has alice's line in $room" said_in "$node" "$room" alice "$text" || ok=1
    done
    local distance
    distance=$(events_of dave | grep -F -- "$(pair text "$text")" | sed -n 's/.*"distance_km":\([0-9.]*\).*/\1/p' | head -n1 || true)
    if [[ -n $distance ]]; then
        info "dave shows alice $(printf '%.1f' "$distance") km away"
    fi

    # A lobby line sent after it reaches carol and erin along the same paths: by then the
    # geo line had time to reach them too, had it been for them.
    ctl alice /join lobby >/dev/null || return 1
    marker=$(unique after-the-geo-line)
    say alice "$marker" || return 1
    for node in carol erin; do
        wait_until 30 "$node has alice's later lobby line" history_has "$node" alice "$marker" || ok=1
    done
    absent "$text" carol erin || ok=1
    return $ok
}

scenario interest_group "alice, carol and erin join interest:rust, bob and dave their own interests: carol's line in interest:rust reaches alice and erin (net_b) and neither bob nor dave"
interest_group() {
    local rc=0
    interest_group_checks || rc=1
    back_to_lobby interest:rust interest:music interest:chess interest:climbing
    return $rc
}

interest_group_checks() {
    local node out text chess marker ok=0
    for node in alice carol erin; do
        out=$(ctl "$node" /join-interest rust) || {
            fail "$node could not join interest:rust: $out"
            return 1
        }
        info "$node: $out"
    done
    # Their own interests: music for bob; music and chess for dave.
    for node in bob dave; do
        out=$(ctl "$node" /join-interest) || {
            fail "$node could not join its interest groups: $out"
            return 1
        }
        info "$node: $out"
    done
    ctl carol /join interest:rust >/dev/null || return 1
    wait_until 30 "carol sees alice and erin in interest:rust" members_include carol alice erin || return 1
    out=$(status_of carol | grep '^members of ' || true)
    info "carol: $out"
    if [[ $out == *bob* || $out == *dave* ]]; then
        fail "carol counts bob or dave in interest:rust"
        ok=1
    fi

    text=$(unique rust-line-from-carol)
    say carol "$text" || return 1
    for node in alice erin; do
        wait_until 30 "$node has carol's line in interest:rust" said_in "$node" interest:rust carol "$text" || ok=1
    done

    # Later lines from carol that bob and dave do get: interest:chess (dave, across the
    # networks) and the lobby (bob).
    out=$(ctl carol /join interest:chess) || return 1
    wait_until 30 "carol sees dave in interest:chess" members_include carol dave || ok=1
    chess=$(unique chess-line-from-carol)
    say carol "$chess" || return 1
    wait_until 30 "dave has carol's later line in interest:chess" said_in dave interest:chess carol "$chess" || ok=1
    ctl carol /join lobby >/dev/null || return 1
    marker=$(unique after-the-rust-line)
    say carol "$marker" || return 1
    wait_until 30 "bob has carol's later lobby line" history_has bob carol "$marker" || ok=1
    absent "$text" bob dave || ok=1
    return $ok
}
