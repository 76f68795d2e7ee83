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

/// The slowest healthcheck interval among `project`'s containers; `None` when none has one.
/// Errors when the docker CLI cannot list or inspect them.
pub fn slowest_healthcheck_interval(project: &str) -> Result<Option<std::time::Duration>, String> {
    let run = |args: &[&str]| {
        let out = Command::new("docker")
            .args(args)
            .output()
            .map_err(|e| format!("docker CLI: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "docker {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let label = format!("label=com.docker.compose.project={project}");
    let ids = run(&["ps", "-q", "--filter", &label])?;
    let mut args = vec!["inspect", "-f", "{{json .Config.Healthcheck}}"];
    args.extend(ids.lines());
    if args.len() == 3 {
        return Ok(None);
    }
    // Go prints a duration in JSON as nanoseconds; a container without a healthcheck as null.
    Ok(run(&args)?
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|h| h.get("Interval").and_then(|i| i.as_u64()))
        .max()
        .map(std::time::Duration::from_nanos))
}
