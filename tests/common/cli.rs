//! The project under test and the docker CLI: shared by the platform tests and the benchmarks.

use std::process::Command;

/// The Compose project under test: `CONTAINER_OPS_TEST_PROJECT`, default `riftwing`.
pub fn project() -> String {
    std::env::var("CONTAINER_OPS_TEST_PROJECT")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "riftwing".into())
}

/// Runs the docker CLI (an argv, no shell) and returns its trimmed stdout; fails the test on error.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
