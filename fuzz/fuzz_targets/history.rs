//! Fuzzes room catch-up requests and answers: see [`ipm_fuzz::check_history`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipm_fuzz::check_history(data));
