//! The binding stories: `story.py` and `Story.kt` play a home visit through the generated
//! Python and Kotlin bindings against a real `eenplan-server` process.
//!
//! Nothing is built here. `cargo test --workspace` has built this package's cdylib (this test
//! links the library, so the cdylib is produced beside it) and the server and admin binaries
//! (their packages have integration tests) before any test runs. The bindings are generated
//! in-process with uniffi's library mode, the same code the `uniffi-bindgen` binary runs in
//! `scripts/bindings.sh`, into `target/<profile>/binding-stories/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use uniffi::{GenerateOptions, TargetLanguage};

/// Far beyond a normal run (Python ≈ seconds, Kotlin's compiler ≈ a minute); a story that
/// hangs on a bug fails instead of holding CI for its whole budget.
const STORY_LIMIT: Duration = Duration::from_secs(15 * 60);

#[path = "support/built.rs"]
mod built;
#[path = "support/kotlin_jar.rs"]
mod kotlin_jar;
use built::{built, profile_dir, workspace};

fn library() -> PathBuf {
    built(&format!("{}eenplan_ffi{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX))
}

/// The generated bindings, once per test run: both stories share them.
struct Generated {
    python: PathBuf,
    kotlin: PathBuf,
}

fn generated() -> &'static Generated {
    static GENERATED: OnceLock<Generated> = OnceLock::new();
    GENERATED.get_or_init(|| {
        let library = library();
        let out = profile_dir().join("binding-stories");
        let (python, kotlin) = (out.join("python"), out.join("kotlin"));
        for (language, dir) in [(TargetLanguage::Python, &python), (TargetLanguage::Kotlin, &kotlin)] {
            let _ = std::fs::remove_dir_all(dir);
            uniffi::generate(GenerateOptions {
                languages: vec![language],
                source: library.to_string_lossy().into_owned().into(),
                out_dir: dir.to_string_lossy().into_owned().into(),
                metadata_no_deps: true,
                ..GenerateOptions::default()
            })
            .unwrap_or_else(|e| panic!("generating bindings from {}: {e:?}", library.display()));
        }
        // The Python module loads the library from its own directory.
        let name = library.file_name().expect("a file name");
        std::fs::copy(&library, python.join(name)).expect("copy the library next to the Python module");
        Generated { python, kotlin }
    })
}

/// Runs `command` to the end (killing it past [`STORY_LIMIT`]) and fails the test with its
/// output unless it succeeded.
fn run(what: &str, command: &mut Command) {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let mut err = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = stderr.read_to_string(&mut err);
        let _ = done.send((child.wait(), out, err));
    });
    let (status, out, err) = match finished.recv_timeout(STORY_LIMIT) {
        Ok(result) => result,
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{what} ran for more than {STORY_LIMIT:?} and was killed");
        }
    };
    let status = status.unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
    assert!(status.success(), "{what} failed ({status}):\n--- stdout\n{out}\n--- stderr\n{err}");
    eprintln!("{what}: passed in {:.1} s", started.elapsed().as_secs_f64());
}

/// The environment every story reads: the binaries and an empty directory of its own.
fn story_env(command: &mut Command, work: &Path) {
    command
        .env("EENPLAN_SERVER", built(&format!("eenplan-server{}", std::env::consts::EXE_SUFFIX)))
        .env("EENPLAN_ADMIN", built(&format!("eenplan-admin{}", std::env::consts::EXE_SUFFIX)))
        // The shaping proxy between a phone and the server (`tests/src/link.rs`).
        .env("EENPLAN_LINK", built(&format!("link_proxy{}", std::env::consts::EXE_SUFFIX)))
        .env("EENPLAN_WORK", work);
}

#[test]
fn the_python_story_enrols_edits_offline_merges_and_settles_through_the_bindings() {
    let generated = generated();
    let work = tempfile::tempdir().expect("temp dir");
    let mut python = Command::new("python3");
    python.arg(workspace().join("bindings/tests/story.py")).env("EENPLAN_FFI_PYTHON", &generated.python);
    story_env(&mut python, work.path());
    run("the Python story", &mut python);
}

#[test]
fn the_kotlin_story_compiles_the_bindings_and_plays_the_same_visit_on_the_jvm() {
    let workspace = workspace();
    // Installs kotlinc and JNA on a fresh machine; a check of two paths when they are there.
    run("scripts/install-test-deps.sh", &mut Command::new(workspace.join("scripts/install-test-deps.sh")));

    let generated = generated();
    // The bindings' jar is shared with the mobile demo's test; only Story.kt is compiled here.
    let bindings = kotlin_jar::bindings_jar(&generated.kotlin, run);
    let out = profile_dir().join("binding-stories/kotlin-story");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("create the Kotlin output directory");
    let jar = out.join("story.jar");
    let mut compile = Command::new(kotlin_jar::kotlinc());
    compile
        .arg("-nowarn")
        .arg("-cp")
        .arg(kotlin_jar::classpath(&[&bindings]))
        .arg(workspace.join("bindings/tests/Story.kt"))
        .arg("-include-runtime")
        .arg("-d")
        .arg(&jar);
    run("kotlinc (Story.kt)", &mut compile);

    let work = tempfile::tempdir().expect("temp dir");
    let library_dir = library().parent().expect("the library's directory").to_path_buf();
    let mut java = Command::new("java");
    java.arg(format!("-Djna.library.path={}", library_dir.display()))
        .arg("-cp")
        .arg(kotlin_jar::classpath(&[&jar, &bindings]))
        .arg("StoryKt");
    story_env(&mut java, work.path());
    run("the Kotlin story", &mut java);
}
