//! Fuzzes registry requests and responses: see [`ipm_fuzz::check_registry`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipm_fuzz::check_registry(data));
