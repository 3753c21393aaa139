//! Writes the seed corpus of every fuzz target to `fuzz/corpus/<target>/seed-<n>`.
//!
//! Run `cargo run -p ipm-fuzz --example seeds` after a wire format changes.

use std::{fs, io, path::PathBuf};

fn main() -> io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for target in ipm_fuzz::TARGETS {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        for (n, seed) in ipm_fuzz::seeds(target).iter().enumerate() {
            fs::write(dir.join(format!("seed-{n}")), seed)?;
        }
        println!("{}: {} seeds", dir.display(), ipm_fuzz::seeds(target).len());
    }
    Ok(())
}
