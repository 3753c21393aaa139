//! Fuzzes a gossip payload (chat, file offer, presence): see [`ipm_fuzz::check_gossip`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipm_fuzz::check_gossip(data));
