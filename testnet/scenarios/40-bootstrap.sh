# The bootstrap goes away and comes back.
# shellcheck shell=bash

scenario bootstrap_restart "the bootstrap stops (SIGTERM) and starts again: nodes on one network keep chatting directly meanwhile, and net_a reaches net_b again once it is back"
bootstrap_restart() {
    local c boot id_after node peer during_a during_b after ok=0
    declare -A ids=()
    c=$(cid bootstrap)
    boot=$(bootstrap_peer_id) || {
        fail "no peer id in the bootstrap's output"
        return 1
    }
    for node in "${NODES[@]}"; do
        ids[$node]=$(peer_id "$node")
    done

    # Nodes that share a network find each other through the DHT and connect directly.
    for node in "${NET_A_NODES[@]}"; do
        for peer in "${NET_A_NODES[@]}"; do
            [[ $node == "$peer" ]] && continue
            wait_until 75 "$node is directly connected to $peer" directly_connected_to "$node" "${ids[$peer]}" || ok=1
        done
    done
    wait_until 75 "dave is directly connected to erin" directly_connected_to dave "${ids[erin]}" || ok=1
    ((ok == 0)) || return 1

    local starts
    starts=$(bootstrap_starts)
    compose stop bootstrap >/dev/null 2>&1
    if is_running bootstrap; then
        fail "the bootstrap did not stop"
        return 1
    fi
    local code
    code=$(docker inspect -f '{{.State.ExitCode}}' "$c")
    if [[ $code == 0 ]]; then
        info "the bootstrap stopped on SIGTERM with exit code 0"
    else
        fail "the bootstrap exited with code $code on SIGTERM"
        ok=1
    fi

    during_a=$(unique bootstrap-down-from-alice)
    during_b=$(unique bootstrap-down-from-erin)
    say alice "$during_a" || ok=1
    say erin "$during_b" || ok=1
    wait_until 30 "bob gets alice's line while the bootstrap is down" history_has bob alice "$during_a" || ok=1
    wait_until 30 "carol gets alice's line while the bootstrap is down" history_has carol alice "$during_a" || ok=1
    wait_until 30 "dave gets erin's line while the bootstrap is down" history_has dave erin "$during_b" || ok=1
    # The networks share nothing but the bootstrap: nothing crosses while it is down.
    if history_has dave alice "$during_a" || history_has alice erin "$during_b"; then
        fail "a line crossed between net_a and net_b while the bootstrap was down"
        ok=1
    else
        info "no line crossed between net_a and net_b while the bootstrap was down"
    fi

    compose start bootstrap >/dev/null 2>&1
    wait_until 15 "the bootstrap runs again and printed its peer id" \
        bootstrap_started_after "$starts" || return 1
    id_after=$(bootstrap_peer_id)
    if [[ $id_after == "$boot" ]]; then
        info "the bootstrap kept its peer id"
    else
        fail "the bootstrap's peer id changed from $boot to $id_after"
        return 1
    fi

    # Nobody is told to dial it again: nodes must find their way back by themselves.
    for node in "${NODES[@]}"; do
        wait_until 120 "$node is connected to the bootstrap again" connected_to "$node" "$boot" || ok=1
    done
    after=$(unique bootstrap-back-from-alice)
    say alice "$after" || return 1
    for node in dave erin; do
        wait_until 30 "$node (net_b) gets alice's line once the bootstrap is back" history_has "$node" alice "$after" || ok=1
    done
    after=$(unique bootstrap-back-from-dave)
    say dave "$after" || return 1
    wait_until 30 "carol (net_a) gets dave's line once the bootstrap is back" history_has carol dave "$after" || ok=1
    return $ok
}
