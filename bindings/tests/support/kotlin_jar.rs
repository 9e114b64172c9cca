//! The generated Kotlin bindings compiled once into a jar that the Kotlin story and the mobile
//! demo share. kotlinc takes most of a minute over them on two cores, and both tests generate
//! the same text from the same library; so the jar is kept in `target/<profile>` beside a copy
//! of the sources it was compiled from, and compiled again only when that text changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::built::{profile_dir, workspace};

/// The jars every Kotlin program here compiles and runs against: JNA and the coroutines
/// library that kotlinc ships. `scripts/install-test-deps.sh` puts them there.
pub fn runtime_jars() -> [PathBuf; 2] {
    [
        PathBuf::from("/usr/share/java/jna.jar"),
        workspace().join(".tools/node_modules/kotlin-compiler/lib/kotlinx-coroutines-core-jvm.jar"),
    ]
}

pub fn kotlinc() -> PathBuf {
    workspace().join(".tools/node_modules/kotlin-compiler/bin/kotlinc")
}

/// `extra` and the runtime jars as one class path.
pub fn classpath(extra: &[&Path]) -> std::ffi::OsString {
    let runtime = runtime_jars();
    std::env::join_paths(extra.iter().copied().chain(runtime.iter().map(PathBuf::as_path)))
        .expect("a class path")
}

/// Every `.kt` file under `dir`, by path, with its path: what the jar is compiled from.
fn sources(dir: &Path) -> Vec<u8> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).unwrap_or_else(|e| panic!("read {}: {e}", next.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "kt") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut text = Vec::new();
    for file in files {
        text.extend_from_slice(file.strip_prefix(dir).expect("under dir").to_string_lossy().as_bytes());
        text.push(0);
        text.extend(std::fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display())));
        text.push(0);
    }
    text
}

/// The jar of the bindings generated into `generated`, compiled by `run` unless the kept one
/// was compiled from the same text.
pub fn bindings_jar(generated: &Path, run: impl FnOnce(&str, &mut Command)) -> PathBuf {
    let dir = profile_dir().join("kotlin-bindings");
    std::fs::create_dir_all(&dir).expect("create the Kotlin bindings' directory");
    let (jar, stamp) = (dir.join("eenplan-bindings.jar"), dir.join("eenplan-bindings.sources"));
    let text = sources(generated);
    if jar.is_file() && std::fs::read(&stamp).is_ok_and(|kept| kept == text) {
        return jar;
    }
    // A jar and stamp from an interrupted run must not pass for each other.
    let _ = std::fs::remove_file(&stamp);
    let partial = dir.join("partial.jar");
    let mut compile = Command::new(kotlinc());
    compile.arg("-nowarn").arg("-cp").arg(classpath(&[])).arg(generated).arg("-d").arg(&partial);
    run("kotlinc (the generated bindings)", &mut compile);
    std::fs::rename(&partial, &jar).expect("keep the bindings' jar");
    std::fs::write(&stamp, text).expect("write the bindings' stamp");
    jar
}
