//! The one place that builds the application from its settings: data files, the store, the Engine, the core.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::core::approvals::Approvals;
use crate::core::catalog::Catalog;
use crate::core::engine::Engine;
use crate::core::error::ConfigError;
use crate::core::policy::Policy;
use crate::core::settings::Settings;
use crate::core::store::AuditKey;
use crate::infra::docker::DockerEngine;
use crate::infra::store::ResilientStore;
use crate::infra::store::spill::Spill;
use crate::pipeline::{Core, LazyEngine};

/// Reads and cross-checks every data file; the bot never runs with part of them.
pub fn load_config(
    config: Option<&Path>,
    env: &Env,
) -> Result<(Settings, Catalog, Policy), ConfigError> {
    let settings = Settings::load_with_env(config, env)?;
    let groups = settings.groups.keys().cloned().collect();
    let catalog = Catalog::load_dir(&settings.commands_dir, &groups)?;
    let policy = Policy::load_dir(&settings.permissions_dir)?;
    policy.check_catalog(&catalog)?;
    Ok((settings, catalog, policy))
}

/// The environment as a lookup, so tests need not touch the process's.
pub type Env<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// The secrets the bot reads from its environment. Each may be given instead as
/// `<NAME>_FILE`, the path of a file holding it (Docker and Compose secrets), so it never sits
/// in the environment of the process or of `docker inspect`.
pub const SECRET_VARS: &[&str] = &[
    "DISCORD_TOKEN",
    "DISCORD_PUBLIC_KEY",
    "CONTAINER_OPS_STORE_URL",
];

/// The `<NAME>_FILE` secrets, read (a trailing newline dropped). Both forms set is an error,
/// as is a file that cannot be read: never a silent fallback to "not set".
pub fn secret_files(env: &Env) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for name in SECRET_VARS {
        let file_var = format!("{name}_FILE");
        let Some(path) = env(&file_var).filter(|p| !p.is_empty()) else {
            continue;
        };
        if env(name).is_some_and(|v| !v.is_empty()) {
            return Err(format!("both {name} and {file_var} are set: keep one"));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {file_var} ({path}): {e}"))?;
        out.push((
            (*name).to_owned(),
            text.trim_end_matches(['\n', '\r']).to_owned(),
        ));
    }
    Ok(out)
}

/// The store the bot keeps its audit and approvals in: `store_url`, else an SQLite file in
/// `$CONTAINER_OPS_DATA_DIR` (default `.container-ops/`), so two consoles on one machine share it.
pub fn store_url(settings: &Settings, env: &Env) -> std::io::Result<String> {
    if let Some(u) = &settings.store_url {
        return Ok(u.expose().to_owned());
    }
    let dir = data_dir(env);
    std::fs::create_dir_all(&dir)?;
    Ok(format!("sqlite:{}", dir.join("state.db").display()))
}

/// The bot's state directory: `$CONTAINER_OPS_DATA_DIR`, default `.container-ops`.
fn data_dir(env: &Env) -> PathBuf {
    PathBuf::from(env("CONTAINER_OPS_DATA_DIR").unwrap_or_else(|| ".container-ops".into()))
}

/// Where audit entries wait while the store is unreachable: `$CONTAINER_OPS_AUDIT_SPILL`, else
/// `audit-spill.jsonl` in the state directory (next to the SQLite default).
pub fn spill_path(env: &Env) -> PathBuf {
    env("CONTAINER_OPS_AUDIT_SPILL")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| data_dir(env).join("audit-spill.jsonl"))
}

/// The key of the audit chain, the spill and the anchor: the file named by
/// `$CONTAINER_OPS_AUDIT_KEY_FILE` (at least 32 bytes, e.g. `head -c 32 /dev/urandom | base64`),
/// kept where someone who can write the store cannot read it. Unset: a plain hash chain.
pub fn audit_key(env: &Env) -> Result<Option<AuditKey>, String> {
    let Some(path) = env("CONTAINER_OPS_AUDIT_KEY_FILE").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let bytes = std::fs::read(&path).map_err(|e| {
        format!("cannot read the audit key file {path} (CONTAINER_OPS_AUDIT_KEY_FILE): {e}")
    })?;
    AuditKey::from_bytes(&bytes)
        .map(Some)
        .map_err(|e| format!("{e} (in {path}, CONTAINER_OPS_AUDIT_KEY_FILE)"))
}

/// The bot's store handle: the store at `url`, its spill, anchor and key.
pub fn resilient_store(url: String, env: &Env) -> Result<ResilientStore, String> {
    Ok(ResilientStore::for_url(
        url,
        Spill::new(spill_path(env)),
        audit_key(env)?,
    ))
}

/// The engine for the configured project, connected on first use.
pub fn lazy_engine(settings: &Settings) -> LazyEngine {
    let host = settings.docker_host.clone();
    let project = settings.project.clone();
    LazyEngine::new(move || {
        let host = host.clone();
        let project = project.clone();
        Box::pin(async move {
            DockerEngine::connect(host.as_deref(), &project)
                .await
                .map(|e| Arc::new(e) as Arc<dyn Engine>)
        })
    })
}

/// The core on the bot's store (audit, approvals). The store may be down: the bot starts
/// anyway, says so, and reconnects on later commands; interrupted requests are recovered when
/// the store is first reached. Errors are written to `err`.
pub fn store_backed_core(
    rt: &tokio::runtime::Runtime,
    settings: Settings,
    catalog: Catalog,
    policy: Policy,
    env: &Env,
    err: &mut dyn Write,
) -> Option<Core> {
    let url = match store_url(&settings, env) {
        Ok(u) => u,
        Err(e) => {
            let _ = writeln!(err, "error: cannot create the state directory: {e}");
            return None;
        }
    };
    let recovered = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let found = recovered.clone();
    let store = match resilient_store(url, env) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return None;
        }
    };
    let store = store.on_first_connect(move |s| {
        let found = found.clone();
        Box::pin(async move {
            // A request left `executing` by a stopped bot is marked failed, never re-run.
            let ids = Approvals::new(s)
                .recover_interrupted(chrono::Utc::now())
                .await
                .map_err(crate::core::store::StoreError::into_anyhow)?;
            found.lock().unwrap_or_else(|p| p.into_inner()).extend(ids);
            anyhow::Ok(())
        })
    });
    let store = Arc::new(store);
    match rt.block_on(store.connect_now()) {
        Ok(()) => {
            let ids = recovered.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if !ids.is_empty() {
                let _ = writeln!(
                    err,
                    "warning: approved request(s) {} were interrupted while executing and are now `failed: interrupted`; check what they left behind",
                    ids.join(", ")
                );
            }
        }
        Err(e) => {
            let _ = writeln!(
                err,
                "warning: {e}\nwarning: starting without it: read-only commands answer (their audit entries are kept in {} and written when it is back); destructive and approval commands are refused until then. It is retried on later commands.",
                store.spill_path().display()
            );
        }
    }
    let engine = lazy_engine(&settings);
    Some(Core::new(settings, catalog, policy, engine, store.clone()).with_store(store))
}
