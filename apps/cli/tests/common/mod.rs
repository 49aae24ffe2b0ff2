//! Scaffolding shared by the `dysample` binary's end-to-end tests: where the binary and the
//! fixtures are, how to run it with a time limit, and the one definition of a clean failure
//! (the expected exit status, exactly one `error:` line holding every needle, no panic).

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test; `DYSAMPLE_TEST_BIN` runs the tests against another build (e.g. one
/// from before a fix, to see its regression test fail).
pub fn exe() -> PathBuf {
    std::env::var_os("DYSAMPLE_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dysample")))
}

/// A command for the binary, without the environment variables that change its behaviour.
pub fn bin() -> Command {
    let mut c = Command::new(exe());
    c.env_remove("DYSAMPLE_BACKEND").env_remove("DYSAMPLE_LOG");
    c
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tests/fixtures`.
pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

/// `tests/fixtures/onnx/<name>`.
pub fn fx(name: &str) -> PathBuf {
    fixtures().join("onnx").join(name)
}

/// `tests/fixtures/module`: a real nested PyTorch module's checkpoint, inputs and outputs.
pub fn module() -> PathBuf {
    fixtures().join("module")
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// Runs `cmd` with a wall-clock limit: a hang is a test failure, not a stuck test run.
pub fn run_limited(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dysample");
    let id = child.id();
    let t0 = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for dysample"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
            panic!("dysample hung for more than {:?}", t0.elapsed());
        }
    }
}

/// Longest any single test command may take (the slowest, whole-model runs, take seconds).
pub const LIMIT: Duration = Duration::from_secs(300);

/// Runs `dysample ARGS` (time-limited) and returns what it did, success or not.
pub fn output(args: &[&str]) -> Output {
    output_env(args, &[])
}

pub fn output_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = bin();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run_limited(c, LIMIT)
}

/// Runs `dysample ARGS`, which must succeed.
pub fn ok(args: &[&str]) -> Output {
    let out = output(args);
    assert!(
        out.status.success(),
        "dysample {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `dysample ARGS`, which must succeed; returns its stdout.
pub fn ok_stdout(args: &[&str]) -> String {
    String::from_utf8_lossy(&ok(args).stdout).into_owned()
}

/// Expects a clean failure of `out`: exit status `code`, exactly one `error:` line holding
/// every needle, no panic. Returns stderr.
pub fn check_err_code(out: &Output, what: &str, code: i32, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{what}: unexpectedly succeeded");
    assert!(!err.contains("panicked"), "{what}: panic: {err}");
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: should fail cleanly with status {code}, got {:?}: {err}",
        out.status
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: expected one error line, got: {err}"
    );
    assert!(err.starts_with("error: "), "{what}: {err}");
    for n in needles {
        assert!(err.contains(n), "{what}: expected {n:?} in: {err}");
    }
    err
}

/// [`check_err_code`] with the CLI's status for a refused input, 2.
pub fn check_err(out: &Output, what: &str, needles: &[&str]) -> String {
    check_err_code(out, what, 2, needles)
}

/// Runs `dysample ARGS`, which must fail cleanly (status 2) naming every needle.
pub fn fails(args: &[&str], needles: &[&str]) -> String {
    check_err(&output(args), &format!("{args:?}"), needles)
}

/// [`fails`] with extra environment variables.
pub fn fails_env(args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> String {
    check_err(&output_env(args, env), &format!("{args:?}"), needles)
}

/// [`fails`] with another exit status (e.g. `eval`'s 1 for a metric below its threshold).
pub fn fails_with(code: i32, args: &[&str], needles: &[&str]) -> String {
    check_err_code(&output(args), &format!("{args:?}"), code, needles)
}
