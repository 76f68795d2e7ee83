//! The binary end to end: check-config, commands, console one-shot exit codes, serve.

use std::process::{Command, Output};

fn bin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_container-ops"));
    c.current_dir(env!("CARGO_MANIFEST_DIR")).args(args);
    for k in [
        "CONTAINER_OPS_PROJECT",
        "CONTAINER_OPS_DOCKER_HOST",
        "CONTAINER_OPS_COMMANDS_DIR",
        "CONTAINER_OPS_PERMISSIONS_DIR",
        "CONTAINER_OPS_STORE_URL",
        "CONTAINER_OPS_USER",
    ] {
        c.env_remove(k);
    }
    // Nothing here may reach a real Docker daemon.
    c.env(
        "CONTAINER_OPS_DOCKER_HOST",
        "unix:///nonexistent/container-ops-test.sock",
    );
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("binary runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_the_shipped_files() {
    let o = bin(&["check-config"], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("13 command(s)"), "{out}");
}

#[test]
fn check_config_names_the_bad_file_and_line_and_fails() {
    let o = bin(
        &["check-config"],
        &[(
            "CONTAINER_OPS_COMMANDS_DIR",
            "tests/fixtures/commands-bad-operation",
        )],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("reboot.toml:4:"), "{err}");
}

#[test]
fn check_config_refuses_a_bad_permissions_file() {
    let o = bin(
        &["check-config"],
        &[(
            "CONTAINER_OPS_PERMISSIONS_DIR",
            "tests/fixtures/permissions-undefined-role",
        )],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("ops.toml:6:"), "{err}");
}

#[test]
fn check_config_refuses_a_bad_settings_file() {
    let o = bin(
        &[
            "--config",
            "tests/fixtures/settings/bad-rate.toml",
            "check-config",
        ],
        &[],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("bad-rate.toml:7:"), "{err}");
}

#[test]
fn commands_prints_the_catalog() {
    let o = bin(&["commands"], &[]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(
        out.contains("/restart-infra") && out.contains("group infra"),
        "{out}"
    );
}

#[test]
fn console_help_runs_without_docker() {
    let o = bin(&["console", "--as", "dave", "--command", "/help"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("/status"), "{out}");
}

#[test]
fn console_denial_exits_2() {
    let o = bin(&["console", "--as", "mallory", "--command", "/status"], &[]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(out.contains("Denied"), "{out}");
}

#[test]
fn console_destructive_command_needs_approval_and_exits_2() {
    let o = bin(
        &["console", "--as", "erin", "--command", "/restart-infra"],
        &[],
    );
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(out.contains("needs approval"), "{out}");
}

#[test]
fn console_with_docker_unreachable_exits_1() {
    let o = bin(&["console", "--as", "dave", "--command", "/status"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
}

#[test]
fn serve_is_not_built_yet() {
    let o = bin(&["serve"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn help_documents_the_exit_codes() {
    let o = bin(&["--help"], &[]);
    let (out, _) = text(&o);
    assert!(
        out.contains("EXIT CODES") && out.contains("user error"),
        "{out}"
    );
}
