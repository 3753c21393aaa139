# Names registered at the bootstrap stay their owners' across a bootstrap restart.
# shellcheck shell=bash

scenario registrations_survive_bootstrap_restart "a newcomer claiming \"alice\" runs as alice#xxxx and is told why, and again after the bootstrap restarts"
registrations_survive_bootstrap_restart() {
    local boot starts logins ok=0 node
    boot=$(bootstrap_peer_id) || {
        fail "no peer id in the bootstrap's output"
        return 1
    }
    wait_until 30 "alice is registered at the bootstrap" has_event alice registered '"name":"alice"' || return 1

    impostor_refused "before the bootstrap restarts" || ok=1

    logins=$(event_count alice registered '"name":"alice"' '"new":false')
    starts=$(bootstrap_starts)
    compose restart --timeout 10 bootstrap >/dev/null 2>&1
    wait_until 30 "the bootstrap runs again" bootstrap_started_after "$starts" || return 1
    for node in "${NODES[@]}"; do
        wait_until 120 "$node is connected to the bootstrap again" connected_to "$node" "$boot" || ok=1
    done
    # Alice logging in again is reported, not required: her login is a single request sent
    # when the connection opens, and the in-process registry tests check it.
    if poll_until 30 has_events $((logins + 1)) alice registered '"name":"alice"' '"new":false'; then
        info "alice logged in again with her key"
    else
        info "no new login event from alice within 30 s"
    fi

    impostor_refused "after the bootstrap restarted" || ok=1
    return $ok
}

# A node with a fresh key (its own data dir inside alice's volume, the one place the image
# may write) and alice's settings, so her name, on net_a: it runs, but as alice#xxxx, and is
# told in one line that the name belongs to someone else.
impostor_refused() {
    local when=$1 out bin
    bin=$(compose_cmd)
    # shellcheck disable=SC2086 # "docker compose" is two words
    # It runs until stopped: 20 s is ample to hear from the registry (docker passes the
    # stop on to the node, which quits and is removed).
    out=$(IPM_BOOTSTRAP_ADDR=${IPM_BOOTSTRAP_ADDR:-$(bootstrap_addr)} timeout -k 5 20 \
        $bin -p "$PROJECT" -f "$COMPOSE_FILE" run --rm --no-deps -T alice \
        --headless --json --no-mdns --data-dir /data/impostor 2>&1 || true)
    out=$(grep -m1 -F 'the name alice is taken' <<<"$out" || true)
    if [[ $out == *'registered to another peer'* && $out == *'others see you as alice#'* ]]; then
        info "a newcomer claiming alice runs as alice#xxxx $when: $(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' <<<"$out")"
        return 0
    fi
    fail "a newcomer claiming alice $when was not told the name is taken: $(tail -n 3 <<<"$out")"
    return 1
}
