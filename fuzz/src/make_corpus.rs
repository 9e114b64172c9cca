//! Writes the seed corpora under `corpus/<target>/`, and `received_automerge`'s base documents
//! under `base/` (run from `fuzz/`):
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
    write_all(&root.join("sync_messages"), &messages)?;
    write_all(&root.join("received_automerge"), &eenplan_fuzz::received::seeds())?;
    // The documents `received_automerge`'s receiver holds, to turn a crash artifact into a
    // regression test (`held.automerge`).
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("base");
    std::fs::create_dir_all(&base)?;
    for (compartment, doc) in &eenplan_fuzz::received::fixture().base {
        std::fs::write(base.join(format!("{compartment}.automerge")), doc.save())?;
    }
    println!("{}: the receiver's documents", base.display());
    Ok(())
}
