//! `container-ops doctor`: what can be checked offline before going live — files, token shape, store, Docker access and what it allows.

use std::io::Write;
use std::path::Path;

use super::wire::{Env, load_config, resilient_store, store_url};
use crate::core::engine::Engine;
use crate::infra::docker::DockerEngine;

#[derive(Default)]
struct Tally {
    errors: usize,
    warnings: usize,
}

impl Tally {
    fn line(&mut self, out: &mut dyn Write, level: &str, what: &str, said: &str) {
        match level {
            "error" => self.errors += 1,
            "warning" => self.warnings += 1,
            _ => {}
        }
        let _ = writeln!(out, "{level:<7} {what}: {said}");
    }
}

/// Runs every check and prints one line each; exit 1 when one is an error.
pub fn run(config: Option<&Path>, env: &Env, out: &mut dyn Write) -> u8 {
    let mut t = Tally::default();
    let (settings, catalog, _policy) = match load_config(config, env) {
        Ok(x) => x,
        Err(e) => {
            t.line(
                out,
                "error",
                "settings, catalog, permissions",
                &e.to_string(),
            );
            return 1;
        }
    };
    t.line(
        out,
        "ok",
        "settings, catalog, permissions, platform",
        &format!(
            "{} command(s), project `{}`, from {}",
            catalog.len(),
            settings.project,
            settings.source
        ),
    );
    let defs = crate::ingress::discord::commands::all(
        &catalog,
        &settings.groups,
        crate::ingress::discord::commands::Places { dms: false },
    );
    match crate::ingress::discord::commands::limit_problems(&defs).as_slice() {
        [] => t.line(out, "ok", "Discord limits", "the catalog registers"),
        problems => t.line(out, "error", "Discord limits", &problems.join("; ")),
    }
    match env("DISCORD_TOKEN").filter(|v| !v.trim().is_empty()) {
        None => t.line(
            out,
            "warning",
            "Discord token",
            "DISCORD_TOKEN (or DISCORD_TOKEN_FILE) is not set: `serve` will not start",
        ),
        Some(tok) if tok.trim().split('.').count() == 3 => t.line(
            out,
            "ok",
            "Discord token",
            "set, in the shape of a bot token",
        ),
        Some(_) => t.line(
            out,
            "error",
            "Discord token",
            "not in the shape of a bot token (three dot-separated parts)",
        ),
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            t.line(out, "error", "runtime", &e.to_string());
            return 1;
        }
    };
    rt.block_on(async {
        match store_url(&settings, env)
            .map_err(|e| e.to_string())
            .and_then(|u| resilient_store(u, env))
        {
            Ok(store) => match store.connect_now().await {
                Ok(()) => t.line(out, "ok", "store", "reachable, schema up to date"),
                Err(e) => t.line(out, "error", "store", &e.to_string()),
            },
            Err(e) => t.line(out, "error", "store", &e),
        }
        let engine =
            match DockerEngine::connect(settings.docker_host.as_deref(), &settings.project).await {
                Ok(e) => e,
                Err(e) => {
                    t.line(out, "error", "Docker", &e.to_string());
                    return;
                }
            };
        match engine.containers().await {
            Ok(cs) if cs.is_empty() => t.line(
                out,
                "warning",
                "Docker",
                &format!("reachable, but project `{}` has no containers", settings.project),
            ),
            Ok(cs) => t.line(
                out,
                "ok",
                "Docker",
                &format!("{} container(s) of project `{}`", cs.len(), settings.project),
            ),
            Err(e) => t.line(out, "error", "Docker", &e.to_string()),
        }
        let checks = engine.allowed_calls().await;
        for (what, r) in &checks {
            if let Err(e) = r {
                t.line(out, "error", &format!("Docker access ({what})"), &e.to_string());
            }
        }
        let refused: Vec<&str> = checks
            .iter()
            .filter(|(_, r)| matches!(r, Ok(false)))
            .map(|(what, _)| *what)
            .collect();
        if refused.is_empty() {
            t.line(
                out,
                "ok",
                "Docker access",
                "restart, stop, start and exec are allowed",
            );
        } else {
            t.line(
                out,
                "warning",
                "Docker access",
                &format!(
                    "{} refused by the Docker API proxy: commands that need them will be refused (a read-only profile)",
                    refused.join(", ")
                ),
            );
        }
    });
    let _ = writeln!(out, "{} error(s), {} warning(s)", t.errors, t.warnings);
    u8::from(t.errors > 0)
}
