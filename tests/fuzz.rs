//! Property fuzzing at scale of what outsiders feed the bot: typed arguments, data files, Discord interactions.
//!
//! Three targets, each run for `CONTAINER_OPS_FUZZ_CASES` cases (default 2000, so the suite
//! stays quick; the security note reports a run with 200000 per target):
//! - the argument parser, on every command of the shipped catalog, in both the console's text
//!   form and Discord's typed options;
//! - the loaders of command files, permission files, settings and platform files, on the
//!   shipped files with random byte edits;
//! - the interaction parser: slash-command interactions as JSON, with random edits, through
//!   serde into serenity's types and on to the bot's own `invocation` and argument parser.
//!
//! "Never panics" is what proptest checks here (a panic fails the case); each target also
//! checks that a refusal is the kind it should be (a user error, a `ConfigError` that names
//! its file).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use container_ops::core::args::{self, ArgContext, OptionValue, RawArgs};
use container_ops::core::catalog::{self, Catalog};
use container_ops::core::error::UserError;
use container_ops::core::platform::PlatformConfig;
use container_ops::core::policy::Policy;
use container_ops::core::settings::Settings;
use container_ops::core::types::{GroupName, ServiceName};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn cases() -> u32 {
    std::env::var("CONTAINER_OPS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn settings() -> Settings {
    Settings::parse(
        Path::new("default"),
        container_ops::core::settings::DEFAULT_SETTINGS,
    )
    .unwrap()
}

fn catalog(s: &Settings) -> Catalog {
    let groups = s.groups.keys().cloned().collect();
    Catalog::load_dir(&repo("commands"), &groups).unwrap()
}

fn known() -> BTreeSet<ServiceName> {
    [
        "api-1",
        "api-2",
        "worker-1",
        "worker-2",
        "console",
        "postgres",
        "redis",
        "minio",
        "temporal",
        "nginx",
        "db-backup",
    ]
    .iter()
    .map(|s| ServiceName::parse(s).unwrap())
    .collect()
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Text that looks like what people type, and text that does not.
fn typed_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("service:".to_owned()),
        Just("tail:".to_owned()),
        Just("since:".to_owned()),
        Just("key:".to_owned()),
        Just("id:".to_owned()),
        Just("reason:".to_owned()),
        Just("api-1".to_owned()),
        Just("app".to_owned()),
        Just("../".to_owned()),
        Just("\"".to_owned()),
        Just("`".to_owned()),
        Just(" ".to_owned()),
        Just("\u{3000}".to_owned()),
        Just("\u{202e}".to_owned()),
        Just("\u{0}\u{1b}[2J".to_owned()),
        Just("99999999999d".to_owned()),
        "[0-9]{1,22}".prop_map(|s| s),
        "[a-z:_-]{1,12}".prop_map(|s| s),
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..14).prop_map(|v| v.concat())
}

fn option_value() -> impl Strategy<Value = OptionValue> {
    prop_oneof![
        typed_text().prop_map(OptionValue::Text),
        any::<i64>().prop_map(OptionValue::Integer),
        any::<bool>().prop_map(OptionValue::Boolean),
    ]
}

fn option_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("service".to_owned()),
        Just("tail".to_owned()),
        Just("since".to_owned()),
        Just("timeout".to_owned()),
        Just("id".to_owned()),
        Just("limit".to_owned()),
        "[a-z_]{0,10}".prop_map(|s| s),
        any::<String>(),
    ]
}

/// A user error is the only acceptable refusal of typed input.
fn is_user_refusal(e: &UserError) -> bool {
    matches!(
        e,
        UserError::InvalidArgument(_) | UserError::NotFound(_) | UserError::Refused(_)
    )
}

#[test]
fn the_argument_parser_never_panics_and_refuses_only_with_user_errors() {
    let s = settings();
    let c = catalog(&s);
    let k = known();
    let groups: BTreeMap<GroupName, Vec<ServiceName>> = s.groups.clone();
    let cx = ArgContext {
        max_arg_len: 200,
        known_services: Some(&k),
        groups: &groups,
    };
    let execs = AtomicU64::new(0);
    let input = prop_oneof![
        typed_text().prop_map(RawArgs::Text),
        prop::collection::vec((option_name(), option_value()), 0..6).prop_map(RawArgs::Options),
    ];
    runner()
        .run(&input, |raw| {
            for cmd in c.iter() {
                execs.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = args::parse(cmd, raw.clone(), &cx) {
                    prop_assert!(is_user_refusal(&e), "/{}: {e:?}", cmd.name);
                }
            }
            Ok(())
        })
        .unwrap();
    println!(
        "argument parser: {} parses ({} cases x {} commands), no panic",
        execs.into_inner(),
        cases(),
        c.iter().count()
    );
}

/// Random byte edits of `seed`: replace, insert or delete at random places.
fn mutated(seed: String) -> impl Strategy<Value = String> {
    let len = seed.len().max(1);
    prop::collection::vec((0..len, 0u8..3, any::<u8>()), 1..8).prop_map(move |edits| {
        let mut b = seed.clone().into_bytes();
        for (at, op, byte) in edits {
            let at = at.min(b.len());
            match op {
                0 if at < b.len() => b[at] = byte,
                1 => b.insert(at, byte),
                _ if at < b.len() => {
                    b.remove(at);
                }
                _ => b.push(byte),
            }
        }
        String::from_utf8_lossy(&b).into_owned()
    })
}

fn shipped(dir: &str) -> Vec<(PathBuf, String)> {
    let mut files: Vec<_> = std::fs::read_dir(repo(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let t = std::fs::read_to_string(&p).unwrap();
            (p, t)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_data_file_loaders_never_panic_and_every_refusal_names_its_file() {
    let s = settings();
    let groups: BTreeSet<GroupName> = s.groups.keys().cloned().collect();
    let mut seeds: Vec<(&'static str, PathBuf, String)> = Vec::new();
    for (p, t) in shipped("commands") {
        seeds.push(("command", p, t));
    }
    for (p, t) in shipped("permissions") {
        seeds.push(("permissions", p, t));
    }
    let settings_file = repo("deploy/container-ops.toml");
    let platform_file = repo("deploy/platform.toml");
    seeds.push((
        "settings",
        settings_file.clone(),
        std::fs::read_to_string(&settings_file).unwrap(),
    ));
    seeds.push((
        "platform",
        platform_file.clone(),
        std::fs::read_to_string(&platform_file).unwrap(),
    ));
    let execs = AtomicU64::new(0);
    let per_seed = (cases() / seeds.len() as u32).max(1);
    for (kind, path, text) in &seeds {
        let mut r = TestRunner::new(Config {
            cases: per_seed,
            failure_persistence: None,
            ..Config::default()
        });
        r.run(&mutated(text.clone()), |t| {
            execs.fetch_add(1, Ordering::Relaxed);
            let refused = match *kind {
                "command" => catalog::parse_command(path, &t, &groups).err(),
                "permissions" => Policy::parse_files(&[(path.clone(), t.clone())]).err(),
                "settings" => Settings::parse(path, &t).err(),
                _ => PlatformConfig::from_toml_str(&t, path).err(),
            };
            if let Some(e) = refused {
                let shown = e.to_string();
                let name = path.file_name().unwrap().to_string_lossy();
                prop_assert!(shown.contains(name.as_ref()), "{kind}: {shown}");
            }
            Ok(())
        })
        .unwrap();
    }
    println!(
        "data-file loaders: {} loads of {} mutated files, no panic",
        execs.into_inner(),
        seeds.len()
    );
}

fn interaction_json(name: &str, options: serde_json::Value) -> String {
    serde_json::json!({
        "id": "1400000000000000001",
        "application_id": "1200000000000000001",
        "type": 2,
        "data": {"id": "1300000000000000001", "name": name, "type": 1, "options": options},
        "guild_id": "1100000000000000001",
        "channel_id": "1000000000000000001",
        "member": {
            "user": {"id": "900000000000000001", "username": "oncall", "discriminator": "0",
                     "global_name": null, "avatar": null, "bot": false, "public_flags": 0},
            "roles": ["800000000000000001"],
            "joined_at": "2026-01-01T00:00:00.000000+00:00",
            "deaf": false, "mute": false, "flags": 0, "pending": false,
            "permissions": "2147483647"
        },
        "token": "tok",
        "version": 1,
        "app_permissions": "2147483647",
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": "1100000000000000001"},
        "context": 0,
        "attachment_size_limit": 10485760
    })
    .to_string()
}

#[test]
fn the_interaction_parser_never_panics_on_edited_interactions() {
    use serenity::all::Interaction;

    let s = settings();
    let c = catalog(&s);
    let k = known();
    let cx = ArgContext {
        max_arg_len: 200,
        known_services: Some(&k),
        groups: &s.groups,
    };
    let seeds = [
        interaction_json(
            "logs",
            serde_json::json!([{"name": "service", "type": 3, "value": "api-1"},
                               {"name": "tail", "type": 4, "value": 50}]),
        ),
        interaction_json(
            "restart",
            serde_json::json!([{"name": "service", "type": 3, "value": "worker-1"}]),
        ),
        interaction_json(
            "deny",
            serde_json::json!([{"name": "id", "type": 3, "value": "ab12cd34"},
                               {"name": "reason", "type": 3, "value": "not now"}]),
        ),
    ];
    // The seeds are what Discord sends: they must parse, or the target tests nothing.
    for seed in &seeds {
        let i: Interaction = serde_json::from_str(seed).unwrap();
        let cmd = i.command().expect("a slash command");
        container_ops::ingress::discord::invocation(&cmd).unwrap();
    }
    let execs = AtomicU64::new(0);
    let parsed = AtomicU64::new(0);
    let input = prop_oneof![
        mutated(seeds[0].clone()),
        mutated(seeds[1].clone()),
        mutated(seeds[2].clone()),
        (
            "[a-z-]{1,12}",
            prop::collection::vec((option_name(), typed_text()), 0..5)
        )
            .prop_map(|(name, opts)| interaction_json(
                &name,
                serde_json::Value::Array(
                    opts.into_iter()
                        .map(|(n, v)| serde_json::json!({"name": n, "type": 3, "value": v}))
                        .collect()
                )
            )),
    ];
    runner()
        .run(&input, |body| {
            execs.fetch_add(1, Ordering::Relaxed);
            let Ok(Interaction::Command(cmd)) = serde_json::from_str::<Interaction>(&body) else {
                return Ok(());
            };
            parsed.fetch_add(1, Ordering::Relaxed);
            let Ok(inv) = container_ops::ingress::discord::invocation(&cmd) else {
                return Ok(());
            };
            if let Some(command) = c.get(inv.command.trim_start_matches('/'))
                && let Err(e) = args::parse(command, inv.args.clone(), &cx)
            {
                prop_assert!(is_user_refusal(&e), "{e:?}");
            }
            Ok(())
        })
        .unwrap();
    println!(
        "interaction parser: {} interactions ({} parsed as slash commands), no panic",
        execs.into_inner(),
        parsed.into_inner()
    );
}
