//! Fuzzes positions, geohashes and radii: see [`ipm_fuzz::check_geo`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipm_fuzz::check_geo(data));
