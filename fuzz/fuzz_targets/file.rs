//! Fuzzes file-transfer requests and responses: see [`ipm_fuzz::check_file`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipm_fuzz::check_file(data));
