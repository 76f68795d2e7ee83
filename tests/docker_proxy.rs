//! The bot behind its Docker API proxy (deploy/docker-proxy), on the real Engine: what each profile lets through and what the bot says when it is refused.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use container_ops::core::engine::{Engine, EngineError};
use container_ops::infra::docker::DockerEngine;

mod common;

fn repo() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Starts (or restarts) the proxy of `profile` with the project's own script; its DOCKER_HOST.
fn proxy(profile: &str, port: u16) -> String {
    let out = Command::new(repo().join("deploy/dev/docker-proxy"))
        .args(["up", profile, &port.to_string()])
        .output()
        .expect("deploy/dev/docker-proxy runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = String::from_utf8_lossy(&out.stdout);
    host.trim()
        .strip_prefix("DOCKER_HOST=")
        .expect("the script prints DOCKER_HOST")
        .to_owned()
}

/// One raw HTTP/1.0 request to the proxy; its status line and body.
fn raw(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_owned())
}

const READONLY: u16 = 23760;
const OPERATOR: u16 = 23761;

#[test]
fn outside_the_allow_list_every_profile_answers_403_privileged_creation_and_secrets_included() {
    proxy("readonly", READONLY);
    proxy("operator", OPERATOR);
    let privileged =
        r#"{"Image":"riftwing/platform:dev","HostConfig":{"Privileged":true,"Binds":["/:/host"]}}"#;
    for port in [READONLY, OPERATOR] {
        for (method, path, body) in [
            ("POST", "/v1.41/containers/create", privileged),
            ("GET", "/v1.41/secrets", ""),
            ("POST", "/v1.41/images/create?fromImage=alpine", ""),
            ("POST", "/v1.41/build", ""),
            ("GET", "/v1.41/plugins", ""),
            ("POST", "/v1.41/swarm/init", "{}"),
            ("POST", "/v1.41/system/prune", ""),
        ] {
            let (status, said) = raw(port, method, path, body);
            assert_eq!(status, 403, "{method} {path} on {port}: {said}");
            assert!(said.contains("allow-list"), "{said}");
        }
    }
    // What the bot reads goes through both.
    for port in [READONLY, OPERATOR] {
        let (status, said) = raw(port, "GET", "/v1.41/containers/json", "");
        assert_eq!(status, 200, "{said}");
    }
}

#[tokio::test]
async fn through_the_read_only_proxy_the_bot_reads_but_a_restart_is_refused_as_forbidden() {
    let host = proxy("readonly", READONLY + 2);
    let project = common::project();
    let engine = DockerEngine::connect(Some(&host), &project).await.unwrap();
    let cs = engine.containers().await.unwrap();
    let mcp = cs
        .iter()
        .find(|c| c.service == "mcp-server")
        .expect("the replica's mcp-server");
    let lines = engine
        .logs(
            &mcp.id,
            &container_ops::core::engine::LogQuery {
                tail: 5,
                since: None,
                timestamps: false,
                max_bytes: 1 << 20,
            },
        )
        .await
        .unwrap();
    assert!(lines.len() <= 5);
    match engine.restart(&mcp.id, Duration::from_secs(5)).await {
        Err(EngineError::Forbidden(m)) => assert!(m.contains("allow-list"), "{m}"),
        other => panic!("expected Forbidden, got {other:?}"),
    }
}

#[tokio::test]
async fn through_the_operator_proxy_a_restart_goes_through() {
    // Fault tests read the platform's state: restart only while none of them runs.
    let _platform = common::TestPlatform::get();
    let host = proxy("operator", OPERATOR + 2);
    let project = common::project();
    let engine = DockerEngine::connect(Some(&host), &project).await.unwrap();
    let cs = engine.containers().await.unwrap();
    let mcp = cs.iter().find(|c| c.service == "mcp-server").unwrap();
    engine
        .restart(&mcp.id, Duration::from_secs(5))
        .await
        .expect("restart allowed in the operator profile");
    // Leave it as found: running and healthy.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let now = engine.containers().await.unwrap();
        let c = now.iter().find(|c| c.service == "mcp-server").unwrap();
        if c.started_at > mcp.started_at && c.health.as_deref() == Some("healthy") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mcp-server did not come back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn on_the_console_a_refused_restart_says_the_bots_docker_access_does_not_allow_it() {
    let host = proxy("readonly", READONLY + 4);
    let dir = tempfile::tempdir().unwrap();
    let run = |line: &str| {
        Command::new(env!("CARGO_BIN_EXE_container-ops"))
            .current_dir(repo())
            .args(["console", "--as", "alice", "--command", line])
            .env("CONTAINER_OPS_DOCKER_HOST", &host)
            .env("CONTAINER_OPS_PROJECT", common::project())
            .env("CONTAINER_OPS_DATA_DIR", dir.path())
            .output()
            .unwrap()
    };
    let status = run("/status");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let restart = run("/restart api-1");
    let out = String::from_utf8_lossy(&restart.stdout);
    assert_eq!(
        restart.status.code(),
        Some(2),
        "a refusal, not an internal error: {out}"
    );
    assert!(
        out.contains("Refused") && out.contains("Docker access does not allow this"),
        "{out}"
    );
    assert!(!out.contains("internal error"), "{out}");
}

#[test]
fn doctor_names_what_the_read_only_proxy_refuses_and_changes_nothing() {
    let host = proxy("readonly", READONLY + 6);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_container-ops"))
        .current_dir(repo())
        .arg("doctor")
        .env("CONTAINER_OPS_DOCKER_HOST", &host)
        .env("CONTAINER_OPS_PROJECT", common::project())
        .env("CONTAINER_OPS_DATA_DIR", dir.path())
        .env("DISCORD_TOKEN", "MTIz.NDU2.Nzg5")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    for line in [
        "ok      settings, catalog, permissions, platform",
        "ok      Discord limits",
        "ok      Discord token",
        "ok      store",
        "ok      Docker: ",
        "warning Docker access: restart, stop, start, exec refused by the Docker API proxy",
    ] {
        assert!(said.contains(line), "`{line}` not in:\n{said}");
    }
    let operator = proxy("operator", OPERATOR + 6);
    let out = Command::new(env!("CARGO_BIN_EXE_container-ops"))
        .current_dir(repo())
        .arg("doctor")
        .env("CONTAINER_OPS_DOCKER_HOST", &operator)
        .env("CONTAINER_OPS_PROJECT", common::project())
        .env("CONTAINER_OPS_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("ok      Docker access: restart, stop, start and exec are allowed")
            && said.contains("warning Discord token"),
        "{said}"
    );
}
