//! Fuzzes room names and gossipsub topics: see [`ipm_fuzz::check_room`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipm_fuzz::check_room(data));
