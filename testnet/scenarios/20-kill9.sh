# Crash and restart of one node.
# shellcheck shell=bash

scenario kill9_restart "bob is killed with SIGKILL and started again: same peer id, history kept, private messages sent while it was down arrive exactly once, new lobby lines reach it"
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

    # Private messages wait for bob: in alice's (net_a) and dave's (net_b) outboxes and
    # the bootstrap's mailbox.
    local private_a private_d out alice_delivered dave_delivered
    alice_delivered=$(event_count alice delivered "$(pair to "$id_before")")
    dave_delivered=$(event_count dave delivered "$(pair to "$id_before")")
    private_a=$(unique private-while-bob-is-down-from-alice)
    private_d=$(unique private-while-bob-is-down-from-dave)
    out=$(private alice bob "$private_a") || ok=1
    queued_reply "$out" || {
        fail "alice's message to the dead bob was not reported as queued: $out"
        ok=1
    }
    out=$(private dave bob "$private_d") || ok=1
    queued_reply "$out" || {
        fail "dave's message to the dead bob was not reported as queued: $out"
        ok=1
    }

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

    wait_until 60 "bob got alice's private message sent while it was down" said_in bob alice alice "$private_a" || ok=1
    wait_until 60 "bob got dave's private message sent while it was down" said_in bob dave dave "$private_d" || ok=1
    # Once the senders have bob's acknowledgements no copy is on its way any more.
    wait_until 120 "alice's outbox has bob's acknowledgement" \
        has_events $((alice_delivered + 1)) alice delivered "$(pair to "$id_before")" || ok=1
    wait_until 120 "dave's outbox has bob's acknowledgement" \
        has_events $((dave_delivered + 1)) dave delivered "$(pair to "$id_before")" || ok=1
    all_once bob alice alice "$private_a" || ok=1
    all_once bob dave dave "$private_d" || ok=1

    after=$(unique after-restart)
    say alice "$after" || return 1
    wait_until 30 "bob has alice's line from after the restart" history_has bob alice "$after" || ok=1
    after=$(unique after-restart-from-net-b)
    say erin "$after" || return 1
    wait_until 30 "bob has erin's line (net_b) from after the restart" history_has bob erin "$after" || ok=1
    return $ok
}
