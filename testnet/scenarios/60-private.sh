# Private messages and files between the two networks, through the bootstrap's relay.
# shellcheck shell=bash

# Size of the file file_transfer_relayed sends, in bytes.
FILE_BYTES=$((4 * 1024 * 1024))

# Whether node $1's /status lists its connection to peer $2 as relayed.
relayed_to() {
    local out
    out=$(status_of "$1") || return 1
    grep -Eq "^  [^ ]+ $2 ([^ ]+ )?relayed " <<<"$out"
}

# Whether node $1 holds a reservation at the bootstrap's relay (its /status lists the
# relayed address others can reach it at).
has_reservation() { status_of "$1" | grep -q '^reachable through relay:'; }

# The line of node $1's /status about its connection to peer $2.
connection_line() { status_of "$1" | grep -E "^  [^ ]+ $2 " | head -n1 || true; }

scenario private_message_relayed "alice (net_a) and dave (net_b) exchange private messages through the bootstrap's relay: each arrives once with the sender's peer id, nobody else sees them, and /status shows the connection as relayed"
private_message_relayed() {
    local alice_id dave_id text reply out ok=0
    alice_id=$(peer_id alice)
    dave_id=$(peer_id dave)
    [[ -n $alice_id && -n $dave_id ]] || {
        fail "no peer id in the /status of alice or dave"
        return 1
    }
    # After the bootstrap's restart dave reserves a relay slot again before anyone can
    # reach it from net_a.
    wait_until 30 "dave is reachable through the bootstrap's relay" has_reservation dave || return 1
    text=$(unique private-from-alice)
    out=$(private alice dave "$text") || return 1
    # A first contact through the relay is usually delivered at once; when the circuit is
    # not up within the node's wait the message is queued and the outbox delivers it on its
    # next try, which the wait for dave's event below checks.
    case $out in
        "delivered to dave"*) ;;
        "dave is not reachable now: queued"*) info "alice's first message to dave was queued before it was delivered" ;;
        *)
            fail "alice's message to dave was neither delivered nor queued: $out"
            ok=1
            ;;
    esac
    wait_until 30 "dave got alice's private message with alice's peer id" \
        has_event dave direct "$(pair peer "$alice_id")" "$(pair text "$text")" || ok=1
    wait_until 10 "dave's conversation with alice has it" said_in dave alice alice "$text" || ok=1
    wait_until 10 "alice's conversation with dave has it" said_in alice dave alice "$text" || ok=1
    wait_until 10 "alice's /status shows the connection to dave as relayed" relayed_to alice "$dave_id" || ok=1
    info "alice: $(connection_line alice "$dave_id")"
    wait_until 10 "dave's /status shows the connection to alice as relayed" relayed_to dave "$alice_id" || ok=1

    reply=$(unique private-reply-from-dave)
    out=$(private dave alice "$reply") || return 1
    [[ $out == "delivered to alice"* ]] || {
        fail "dave's reply was not delivered at once: $out"
        ok=1
    }
    wait_until 30 "alice got dave's reply with dave's peer id" \
        has_event alice direct "$(pair peer "$dave_id")" "$(pair text "$reply")" || ok=1

    local n
    for n in "dave $text" "alice $reply"; do
        local node=${n%% *} t=${n#* }
        local count
        count=$(event_count "$node" direct "$(pair text "$t")")
        if ((count == 1)); then
            info "$node got it exactly once"
        else
            fail "$node got '$t' $count times"
            ok=1
        fi
    done
    # Both messages are delivered (acknowledged): nobody else could still get them.
    absent "$text" bob carol erin || ok=1
    absent "$reply" bob carol erin || ok=1
    return $ok
}

scenario file_transfer_relayed "bob (net_a) sends erin (net_b) a 4 MiB file through the bootstrap's relay; erin accepts it and the file it keeps has the original's sha256"
file_transfer_relayed() {
    local tmp rc=0
    tmp=$(mktemp)
    file_transfer_checks "$tmp" || rc=1
    rm -f "$tmp"
    return $rc
}

file_transfer_checks() {
    local tmp=$1 name sha size out offer transfer received path got ok=0
    name=$(unique testnet-file).bin
    head -c "$FILE_BYTES" /dev/urandom >"$tmp"
    chmod 0644 "$tmp"
    sha=$(sha256sum "$tmp" | cut -d' ' -f1)
    info "the file: $name, $FILE_BYTES bytes, sha256 $sha"
    # The image has no shell: the file goes into bob's data volume from here.
    docker cp "$tmp" "$(cid bob):/data/$name" || {
        fail "could not copy the file into bob's container"
        return 1
    }

    out=$(ctl bob "/send-file erin /data/$name") || {
        fail "bob could not offer the file: $out"
        return 1
    }
    info "bob: $out"
    wait_until 30 "erin is offered $name" has_event erin file_offer "$(pair name "$name")" || return 1
    offer=$(events_of erin | grep -F '"event":"file_offer"' | grep -F -- "$(pair name "$name")" | tail -n1)
    transfer=$(field "$offer" transfer)
    size=$(sed -n 's/.*"size":\([0-9]*\).*/\1/p' <<<"$offer")
    info "erin: offer $transfer from $(field "$offer" from), $size bytes"
    [[ $size == "$FILE_BYTES" ]] || {
        fail "the offer says $size bytes, the file has $FILE_BYTES"
        ok=1
    }
    [[ -n $transfer ]] || {
        fail "no transfer id in erin's file_offer event: $offer"
        return 1
    }

    out=$(ctl erin "/accept $transfer") || {
        fail "erin could not accept the file: $out"
        return 1
    }
    info "erin: $out"
    if ! wait_until 120 "erin received the whole file" \
        has_event erin file_received "$(pair transfer "$transfer")"; then
        info "erin's transfers: $(ctl erin /transfers 2>&1 | grep -F -- "$name")"
        events_of erin | grep -F '"event":"file_failed"' | grep -F -- "$transfer" | sed 's/^/    /' >&2 || true
        return 1
    fi
    received=$(events_of erin | grep -F '"event":"file_received"' | grep -F -- "$(pair transfer "$transfer")" | tail -n1)
    path=$(field "$received" path)
    info "erin: received at $path, sha256 $(field "$received" sha256)"
    if [[ $(field "$received" sha256) == "$sha" ]]; then
        info "erin's node reports the original's sha256"
    else
        fail "erin's node reports sha256 $(field "$received" sha256), the original has $sha"
        ok=1
    fi
    # The file itself, read back from erin's volume.
    got=$(docker cp "$(cid erin):$path" - | tar -xO | sha256sum | cut -d' ' -f1)
    if [[ $got == "$sha" ]]; then
        info "the file in erin's volume has the original's sha256"
    else
        fail "the file in erin's volume has sha256 $got, the original has $sha"
        ok=1
    fi
    wait_until 10 "erin's /status shows the connection to bob as relayed" relayed_to erin "$(peer_id bob)" || ok=1
    return $ok
}
