# Private messages to a node that is cut off from its network, delivered once it is back.
# shellcheck shell=bash

scenario partition_private "dave (net_b) is cut off; alice (net_a, relayed) and erin (net_b, direct) send it private messages that wait in their outboxes and the bootstrap's mailbox; dave is plugged back in and gets each exactly once"
partition_private() {
    local c net ip boot dave_id text out ok=0
    local from_alice=() from_erin=()
    c=$(cid dave)
    boot=$(bootstrap_peer_id)
    dave_id=$(peer_id dave)
    [[ -n $dave_id ]] || {
        fail "no peer id in dave's /status"
        return 1
    }
    net=$(network_name net_b)
    ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" "$c")
    [[ -n $ip ]] || {
        fail "dave has no address on $net"
        return 1
    }
    # What alice and erin have seen so far, to count what this scenario adds.
    local alice_delivered erin_delivered alice_deposited erin_deposited
    alice_delivered=$(event_count alice delivered "$(pair to "$dave_id")")
    erin_delivered=$(event_count erin delivered "$(pair to "$dave_id")")
    alice_deposited=$(event_count alice queued "$(pair to "$dave_id")" "$(pair at "$boot")")
    erin_deposited=$(event_count erin queued "$(pair to "$dave_id")" "$(pair at "$boot")")

    docker network disconnect "$net" "$c"
    info "dave ($ip) is disconnected from $net"

    local i
    for i in 1 2; do
        text=$(unique "partition-private-$i-from-alice")
        out=$(private alice dave "$text") || ok=1
        queued_reply "$out" || {
            fail "alice's message to the cut-off dave was not reported as queued: $out"
            ok=1
        }
        from_alice+=("$text")
    done
    text=$(unique partition-private-from-erin)
    out=$(private erin dave "$text") || ok=1
    queued_reply "$out" || {
        fail "erin's message to the cut-off dave was not reported as queued: $out"
        ok=1
    }
    from_erin+=("$text")

    # Sealed copies wait in the bootstrap's mailbox too.
    wait_until 30 "alice's 2 messages are in the bootstrap's mailbox" \
        has_events $((alice_deposited + 2)) alice queued "$(pair to "$dave_id")" "$(pair at "$boot")" || ok=1
    wait_until 30 "erin's message is in the bootstrap's mailbox" \
        has_events $((erin_deposited + 1)) erin queued "$(pair to "$dave_id")" "$(pair at "$boot")" || ok=1
    for text in "${from_alice[@]}" "${from_erin[@]}"; do
        if (($(mentions dave "$text") > 0)); then
            fail "dave got '$text' while it had no network at all"
            ok=1
        fi
    done
    status_of dave >/dev/null || {
        fail "dave's node stopped answering ipm ctl while partitioned"
        ok=1
    }

    # Cut off long enough for dave to give up its connection to the bootstrap (pings fail):
    # coming back it connects anew and fetches its mailbox at once.
    if poll_until 60 not connected_to dave "$boot"; then
        info "dave dropped its dead connection to the bootstrap after ${POLL_MS} ms"
    else
        info "after 60 s without network dave still lists the bootstrap as connected"
    fi

    docker network connect --ip "$ip" --alias dave "$net" "$c"
    info "dave is reconnected to $net at $ip"
    for text in "${from_alice[@]}"; do
        wait_until 120 "dave got alice's '$text'" said_in dave alice alice "$text" || ok=1
    done
    for text in "${from_erin[@]}"; do
        wait_until 120 "dave got erin's '$text'" said_in dave erin erin "$text" || ok=1
    done
    # Once the senders' outboxes have their acknowledgements, no copy is on its way: the
    # outbox retried after the mailbox (or the other way round) and dave dropped the second.
    wait_until 120 "alice's outbox has dave's acknowledgements" \
        has_events $((alice_delivered + 2)) alice delivered "$(pair to "$dave_id")" || ok=1
    wait_until 120 "erin's outbox has dave's acknowledgement" \
        has_events $((erin_delivered + 1)) erin delivered "$(pair to "$dave_id")" || ok=1
    all_once dave alice alice "${from_alice[@]}" || ok=1
    all_once dave erin erin "${from_erin[@]}" || ok=1

    # And a new message goes straight through.
    text=$(unique after-heal-private-from-alice)
    out=$(private alice dave "$text") || ok=1
    [[ $out == "delivered to dave"* ]] || {
        fail "alice's message after the heal was not delivered at once: $out"
        ok=1
    }
    wait_until 30 "dave got alice's message sent after the heal" said_in dave alice alice "$text" || ok=1
    return $ok
}
