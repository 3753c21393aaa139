//! Fuzzes sealed private messages from a mailbox: see [`ipm_fuzz::check_sealed`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipm_fuzz::check_sealed(data));
