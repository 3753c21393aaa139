# Crash and restart of one node.
# shellcheck shell=bash

scenario kill9_restart "bob is killed with SIGKILL and started again: same peer id, history kept, new lobby lines reach it"
kill9_restart() {
    local c id_before id_after before during after ok=0
    c=$(cid bob)
    id_before=$(peer_id bob)
    [[ -n $id_before ]] || {
        fail "no peer id in bob's /status"
        return 1
    }
    info "bob's peer id: $id_before"

    before=$(unique before-kill)
    say alice "$before" || return 1
    wait_until 30 "bob has alice's line before the kill" history_has bob alice "$before" || return 1

    docker kill -s KILL "$c" >/dev/null
    wait_until 15 "bob's container is stopped" bash -c "[[ \$(docker inspect -f '{{.State.Running}}' $c) == false ]]" || return 1
    info "bob exited with code $(docker inspect -f '{{.State.ExitCode}}' "$c")"

    # Sent while bob is down: gossip keeps no backlog, so bob is not expected to get it.
    during=$(unique while-bob-is-down)
    say carol "$during" || ok=1

    docker start "$c" >/dev/null
    wait_ready 60 bob || return 1

    id_after=$(peer_id bob)
    if [[ $id_after == "$id_before" ]]; then
        info "bob's peer id is unchanged"
    else
        fail "bob's peer id changed from $id_before to $id_after"
        ok=1
    fi
    if history_has bob alice "$before"; then
        info "bob's history still has the line from before the kill"
    else
        fail "bob's history lost alice's line from before the kill"
        ok=1
    fi
    if history_has bob carol "$during"; then
        info "bob also has the line sent while it was down"
    else
        info "bob missed the line sent while it was down (the lobby keeps no backlog)"
    fi

    after=$(unique after-restart)
    say alice "$after" || return 1
    wait_until 30 "bob has alice's line from after the restart" history_has bob alice "$after" || ok=1
    after=$(unique after-restart-from-net-b)
    say erin "$after" || return 1
    wait_until 30 "bob has erin's line (net_b) from after the restart" history_has bob erin "$after" || ok=1
    return $ok
}
