//! Fuzzes name records read from the DHT: see [`ipm_fuzz::check_name_record`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipm_fuzz::check_name_record(data));
