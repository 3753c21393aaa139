# Lobby scenarios: what one line in the lobby does across both networks.
# shellcheck shell=bash

scenario lobby_reaches_all "a lobby line from alice (net_a) reaches the history of every other node, on net_a and net_b"
lobby_reaches_all() {
    local text node ok=0
    text=$(unique hello-from-alice)
    say alice "$text" || return 1
    wait_until 10 "alice's own history has the line" history_has alice alice "$text" || ok=1
    for node in bob carol dave erin; do
        wait_until 30 "$node has alice's line" history_has "$node" alice "$text" || ok=1
    done
    return $ok
}

scenario same_words_twice "bob (net_a) and dave (net_b) send the same words; carol and erin each keep both lines"
same_words_twice() {
    local text node ok=0
    text=$(unique same-words)
    say bob "$text" || return 1
    say dave "$text" || return 1
    for node in carol erin; do
        wait_until 30 "$node has bob's line" history_has "$node" bob "$text" || ok=1
        wait_until 30 "$node has dave's line" history_has "$node" dave "$text" || ok=1
        local n
        n=$(history_count "$node" "$text")
        if ((n == 2)); then
            info "$node has exactly 2 lines with those words"
        else
            fail "$node has $n lines with those words, expected 2"
            ok=1
        fi
    done
    return $ok
}
