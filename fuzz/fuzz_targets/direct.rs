//! Fuzzes private-message requests and responses: see [`ipm_fuzz::check_direct`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipm_fuzz::check_direct(data));
