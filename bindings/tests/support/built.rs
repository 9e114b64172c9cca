//! Where `cargo test --workspace` put what the binding tests run: shared by the stories and
//! the mobile demo.

use std::path::{Path, PathBuf};

/// `target/<profile>`: tests run from `target/<profile>/deps`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    exe.parent().and_then(Path::parent).expect("the test runs from target/<profile>/deps").to_path_buf()
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("bindings/ sits in the workspace").to_path_buf()
}

/// A file `cargo test --workspace` built into `target/<profile>` (or its `deps`).
pub fn built(name: &str) -> PathBuf {
    let dir = profile_dir();
    // `cargo test` links the library into `deps` without copying it up (only `cargo build`
    // does), so the copy in `target/<profile>` may be older: take the newest.
    [dir.join(name), dir.join("deps").join(name)]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "{name} is not built in {}: run `cargo test --workspace` (or `cargo build --workspace`)",
                dir.display()
            )
        })
}
