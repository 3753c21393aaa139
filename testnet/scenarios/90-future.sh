# Scenarios for features ipm does not have yet. Each TODO names what it will check; none is
# registered, so none runs, until the feature exists.
# shellcheck shell=bash

# TODO geo_group: alice (u09tvw), bob (u09tvq) and dave (u09tvx) share a location group
#   (IPM_GEO, `/join-geo`); a line alice sends to the group reaches bob and dave (across
#   networks, through the bootstrap) and not carol or erin, who live elsewhere (gcpvj…).

# TODO interest_group: alice, carol and erin start with `--interest rust` (IPM_INTEREST);
#   a line carol sends to interest:rust reaches alice and erin, and not bob or dave.

# TODO private_message_relayed: alice (net_a) sends `/msg dave …`; dave (net_b), which
#   shares no network with alice, gets it through a relay circuit of the bootstrap, with
#   alice's verified peer id; bob and carol never see it; /status shows the connection
#   to dave as relayed.

# TODO file_transfer_relayed: bob (net_a) sends a file with `/send-file erin …`; erin
#   (net_b) receives it through the relay and its sha256 equals the original's.

# TODO partition_private: dave is disconnected from net_b; a `/msg dave …` from alice fails
#   or waits while dave is unreachable, and after dave is reconnected a new private message
#   reaches it.
