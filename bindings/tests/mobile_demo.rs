//! The mobile demo's headless home visit (`mobile-demo/run-script.sh`) against a real
//! `eenplan-server`: the Kotlin app's view models, on the JVM, through the generated bindings.
//!
//! Nothing is built with cargo here: `cargo test --workspace` has built the cdylib, the server
//! and the admin binary. The Kotlin bindings are generated in-process (uniffi library mode, as
//! `stories.rs` does) into `target/<profile>/mobile-demo/kotlin` and compiled into the jar the
//! Kotlin story shares (`support/kotlin_jar.rs`, kept while their text does not change); the
//! driver compiles the app against it into `target/<profile>/mobile-demo/build` (kept too),
//! then enrols four phones, plays the visit and the escalation (regie offered to the Zorg- en
//! Veiligheidshuis and accepted on its phone), the working cycle (an action on a worker's agenda,
//! the plan adopted by the regisseur and verified on the worker's phone), revokes one phone and
//! checks that it wiped itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use uniffi::{GenerateOptions, TargetLanguage};

/// Far beyond a normal run (kotlinc ≈ 1–2 minutes, the visit ≈ 10 s).
const LIMIT: Duration = Duration::from_secs(15 * 60);

#[path = "support/built.rs"]
mod built;
#[path = "support/kotlin_jar.rs"]
mod kotlin_jar;
use built::{built, profile_dir, workspace};

/// Runs a build step to the end; the test fails with its output unless it succeeded.
fn run(what: &str, command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_mobile_demo_plays_a_home_visit_headless_through_its_view_models() {
    let library =
        built(&format!("{}eenplan_ffi{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
    let out = profile_dir().join("mobile-demo");
    let kotlin = out.join("kotlin");
    let _ = std::fs::remove_dir_all(&kotlin);
    uniffi::generate(GenerateOptions {
        languages: vec![TargetLanguage::Kotlin],
        source: library.to_string_lossy().into_owned().into(),
        out_dir: kotlin.to_string_lossy().into_owned().into(),
        metadata_no_deps: true,
        ..GenerateOptions::default()
    })
    .unwrap_or_else(|e| panic!("generating Kotlin bindings from {}: {e:?}", library.display()));
    // kotlinc and JNA on a fresh machine (a check of two paths when they are there).
    run("scripts/install-test-deps.sh", &mut Command::new(workspace().join("scripts/install-test-deps.sh")));
    let bindings = kotlin_jar::bindings_jar(&kotlin, run);

    let started = Instant::now();
    let mut child = Command::new(workspace().join("mobile-demo/run-script.sh"))
        .env("EENPLAN_SERVER_BIN", built(&format!("eenplan-server{}", std::env::consts::EXE_SUFFIX)))
        .env("EENPLAN_ADMIN_BIN", built(&format!("eenplan-admin{}", std::env::consts::EXE_SUFFIX)))
        .env("EENPLAN_FFI_LIB_DIR", library.parent().expect("the library's directory"))
        .env("EENPLAN_KOTLIN_BINDINGS", &kotlin)
        .env("EENPLAN_BINDINGS_JAR", &bindings)
        .env("EENPLAN_DEMO_BUILD", out.join("build"))
        // The administrator's keyring with the cheapest Argon2 (a test, not a real network).
        .env("EENPLAN_INSECURE_FAST_KDF", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mobile-demo/run-script.sh");
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let err_reader = std::thread::spawn(move || {
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            err
        });
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let err = err_reader.join().unwrap_or_default();
        let _ = done.send((child.wait(), out, err));
    });
    let Ok((status, out, err)) = finished.recv_timeout(LIMIT) else {
        // The driver's own trap stops its server when it is terminated.
        let _ = Command::new("kill").arg(pid.to_string()).status();
        panic!("mobile-demo/run-script.sh ran for more than {LIMIT:?} and was stopped");
    };
    let status = status.expect("wait for the driver");
    assert!(status.success(), "the mobile demo failed ({status}):\n--- stdout\n{out}\n--- stderr\n{err}");
    for expected in [
        "home visit complete",
        "regie complete",
        "working cycle complete",
        "state: WIPED",
        "mobile demo: passed",
    ] {
        assert!(out.contains(expected), "the demo's output lacks {expected:?}:\n{out}");
    }
    eprintln!("the mobile demo: passed in {:.1} s", started.elapsed().as_secs_f64());
}
