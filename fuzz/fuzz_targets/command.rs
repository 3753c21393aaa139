//! Fuzzes lines typed at the prompt: see [`ipm_fuzz::check_command`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipm_fuzz::check_command(data));
