//! The bot's own image and Compose snippet on the real Engine: it starts, finds its data files, and reaches the project through its Docker API proxy.
//!
//! `deploy/test-all` builds the image first (`deploy/image/build`, a release build); this
//! test fails, saying so, when it is missing.

use std::path::Path;
use std::process::{Command, Output};

mod common;

const IMAGE: &str = "container-ops:dev";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn require_image() {
    let o = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the image {IMAGE} is missing: build it with deploy/image/build (deploy/test-all does)"
    );
}

#[test]
fn the_image_runs_as_non_root_with_its_data_files_and_a_healthcheck() {
    require_image();
    let user = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{.Config.User}} {{json .Config.Healthcheck.Test}}",
            IMAGE,
        ])
        .output()
        .unwrap();
    let said = text(&user);
    assert!(said.starts_with("65532:65532"), "{said}");
    assert!(said.contains("healthz"), "{said}");
    let check = Command::new("docker")
        .args(["run", "--rm", IMAGE, "check-config"])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("33 command(s)"), "{}", text(&check));
}

#[test]
fn from_the_compose_snippet_the_bot_answers_status_through_the_proxy_with_secrets_from_files() {
    require_image();
    let project = common::project();
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(
        secrets.path().join("discord_token"),
        "not-used-by-the-console\n",
    )
    .unwrap();
    std::fs::write(
        secrets.path().join("audit_key"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    // The secret files must be readable by the image's user.
    for f in ["discord_token", "audit_key"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            secrets.path().join(f),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let compose = |args: &[&str]| {
        Command::new("docker-compose")
            .current_dir(repo())
            .args([
                "-p",
                &project,
                "-f",
                "deploy/dev/docker-compose.yml",
                "-f",
                "deploy/compose.yml",
            ])
            .args(args)
            .env("CONTAINER_OPS_DEPLOY", repo().join("deploy"))
            .env("CONTAINER_OPS_SECRETS", secrets.path())
            .env("CONTAINER_OPS_DOCKER_PROFILE", "readonly")
            .output()
            .unwrap()
    };
    let up = compose(&["up", "-d", "--no-deps", "docker-proxy"]);
    assert!(up.status.success(), "{}", text(&up));
    // One console command in the bot's container, on the project's network.
    let console = |line: &str| {
        compose(&[
            "run",
            "--rm",
            "-T",
            "--no-deps",
            "container-ops",
            "console",
            "--as",
            "alice",
            "--command",
            line,
        ])
    };
    let status = console("/status");
    let said = text(&status);
    assert!(status.status.success(), "{said}");
    assert!(said.contains(&format!("Status of {project}")), "{said}");
    // The read-only profile refuses a restart, and the bot says why.
    let restart = console("/restart api-1");
    let said = text(&restart);
    assert_eq!(restart.status.code(), Some(2), "{said}");
    assert!(said.contains("Docker access does not allow this"), "{said}");
    let down = compose(&["rm", "-fs", "docker-proxy"]);
    assert!(down.status.success(), "{}", text(&down));
}
