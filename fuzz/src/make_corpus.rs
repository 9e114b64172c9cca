//! Writes the seed corpora under `corpus/<target>/` (run from `fuzz/`):
//! `cargo run --bin make_corpus`. Stable Rust is enough.

use std::path::Path;

use eenplan_protocol::sync::encode;

fn write_all(dir: &Path, files: &[Vec<u8>]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (i, bytes) in files.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), bytes)?;
    }
    println!("{}: {} files", dir.display(), files.len());
    Ok(())
}

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    write_all(&root.join("bundle_decode"), &eenplan_fuzz::seed_bundles())?;
    let mut messages: Vec<Vec<u8>> = eenplan_fuzz::seed_requests().iter().map(encode).collect();
    messages.extend(eenplan_fuzz::seed_responses().iter().map(encode));
    write_all(&root.join("sync_messages"), &messages)
}
