//! Permissions: roles → people, grants of command × service × channel globs; deny by default.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use toml::Spanned;

use crate::core::catalog::Catalog;
use crate::core::error::{ConfigError, line_of};
use crate::core::types::{ChannelId, GroupName, RoleId, ServiceName, UserId};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    roles: BTreeMap<Spanned<RoleId>, RawRole>,
    #[serde(default)]
    grants: Vec<Spanned<RawGrant>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(default)]
    description: String,
    /// Discord user snowflakes and local console names.
    #[serde(default)]
    users: Vec<UserId>,
    /// Discord role ids whose members hold this role.
    #[serde(default)]
    discord_roles: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    roles: Vec<Spanned<RoleId>>,
    commands: Vec<Spanned<String>>,
    #[serde(default = "everything")]
    services: Vec<Spanned<String>>,
    #[serde(default = "everything")]
    channels: Vec<Spanned<String>>,
}

fn everything() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "*".to_owned())]
}

#[derive(Debug, Clone)]
struct RoleDef {
    users: BTreeSet<UserId>,
    discord_roles: BTreeSet<String>,
    source: PathBuf,
}

#[derive(Debug, Clone)]
struct Grant {
    roles: BTreeSet<RoleId>,
    commands: GlobSet,
    services: GlobSet,
    channels: GlobSet,
    /// Command names without glob characters, with file and line, checked against the catalog.
    literal_commands: Vec<(String, PathBuf, usize)>,
    /// Service patterns with a wildcard (other than `*`), with file and line, for check-config.
    service_globs: Vec<(String, PathBuf, usize)>,
}

/// Who holds which role and what each role may do. Built only from files that all validated.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    roles: BTreeMap<RoleId, RoleDef>,
    grants: Vec<Grant>,
}

impl Policy {
    /// Loads every `*.toml` in `dir`; roles may be defined in one file and granted in another.
    pub fn load_dir(dir: &Path) -> Result<Self, ConfigError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| {
                ConfigError::new(dir, format!("cannot read the permissions directory: {e}"))
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(ConfigError::new(dir, "no permission files (*.toml) found"));
        }
        let mut texts = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError::new(&path, format!("cannot read: {e}")))?;
            texts.push((path, text));
        }
        Self::parse_files(&texts)
    }

    /// Parses several files as one policy; roles are resolved after all files are read.
    pub fn parse_files(files: &[(PathBuf, String)]) -> Result<Self, ConfigError> {
        let mut policy = Policy::default();
        let mut pending_grants = Vec::new();
        for (path, text) in files {
            let raw: RawFile =
                toml::from_str(text).map_err(|e| ConfigError::from_toml(path, text, &e))?;
            for (role, def) in raw.roles {
                let span = role.span();
                let role = role.into_inner();
                if let Some(prev) = policy.roles.get(&role) {
                    return Err(ConfigError::at(
                        path,
                        text,
                        Some(span),
                        format!(
                            "role `{role}` is already defined in {}",
                            prev.source.display()
                        ),
                    ));
                }
                let _ = def.description;
                let mut discord_roles = BTreeSet::new();
                for r in def.discord_roles {
                    if r.get_ref().is_empty() || !r.get_ref().chars().all(|c| c.is_ascii_digit()) {
                        return Err(ConfigError::at(
                            path,
                            text,
                            Some(r.span()),
                            format!(
                                "discord role id `{}` must be a snowflake (digits)",
                                r.get_ref()
                            ),
                        ));
                    }
                    discord_roles.insert(r.into_inner());
                }
                policy.roles.insert(
                    role,
                    RoleDef {
                        users: def.users.into_iter().collect(),
                        discord_roles,
                        source: path.clone(),
                    },
                );
            }
            for g in raw.grants {
                pending_grants.push((path, text, g));
            }
        }
        for (path, text, g) in pending_grants {
            let gspan = g.span();
            let g = g.into_inner();
            let mut roles = BTreeSet::new();
            for r in g.roles {
                if !policy.roles.contains_key(r.get_ref()) {
                    return Err(ConfigError::at(
                        path,
                        text,
                        Some(r.span()),
                        format!(
                            "grant names role `{}`, which no permissions file defines",
                            r.get_ref()
                        ),
                    ));
                }
                roles.insert(r.into_inner());
            }
            if roles.is_empty() {
                return Err(ConfigError::at(
                    path,
                    text,
                    Some(gspan),
                    "grant has no roles",
                ));
            }
            let literal_commands = g
                .commands
                .iter()
                .filter(|c| !c.get_ref().contains(['*', '?', '[', '{']))
                .map(|c| {
                    (
                        c.get_ref().trim_start_matches('/').to_owned(),
                        path.clone(),
                        line_of(text, c.span().start),
                    )
                })
                .collect();
            let service_globs = g
                .services
                .iter()
                .filter(|s| s.get_ref() != "*" && s.get_ref().contains(['*', '?', '[', '{']))
                .map(|s| {
                    (
                        s.get_ref().clone(),
                        path.clone(),
                        line_of(text, s.span().start),
                    )
                })
                .collect();
            policy.grants.push(Grant {
                roles,
                commands: globs(path, text, &g.commands, true)?,
                services: globs(path, text, &g.services, false)?,
                channels: globs(path, text, &g.channels, false)?,
                literal_commands,
                service_globs,
            });
        }
        Ok(policy)
    }

    /// Service patterns that reach further than the groups they seem to mean: a pattern that
    /// matches some members of a settings group and also services in no such group (`api-*`
    /// meaning the API instances, and also matching `api-gateway`). Warnings, with file and
    /// line, that check-config prints; naming the services (or a group's members) fixes them.
    pub fn service_pattern_warnings(
        &self,
        services: &BTreeSet<String>,
        groups: &BTreeMap<GroupName, Vec<ServiceName>>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for g in &self.grants {
            for (pattern, path, line) in &g.service_globs {
                let Ok(glob) = globset::Glob::new(pattern) else {
                    continue;
                };
                let m = glob.compile_matcher();
                let matched: BTreeSet<&str> = services
                    .iter()
                    .map(String::as_str)
                    .filter(|s| m.is_match(s))
                    .collect();
                let meant: Vec<(&GroupName, BTreeSet<&str>)> = groups
                    .iter()
                    .map(|(name, members)| {
                        let inside: BTreeSet<&str> = members
                            .iter()
                            .map(ServiceName::as_str)
                            .filter(|s| matched.contains(s))
                            .collect();
                        (name, inside)
                    })
                    .filter(|(_, inside)| !inside.is_empty())
                    .collect();
                if meant.is_empty() {
                    continue;
                }
                let in_groups: BTreeSet<&str> = meant
                    .iter()
                    .flat_map(|(_, inside)| inside.iter().copied())
                    .collect();
                let outside: Vec<&str> = matched.difference(&in_groups).copied().collect();
                if outside.is_empty() {
                    continue;
                }
                let names: Vec<String> = meant.iter().map(|(n, _)| format!("`{n}`")).collect();
                out.push(format!(
                    "{}:{line}: service pattern `{pattern}` matches {} of group {} and also {}, which is in no group: name the services the grant means",
                    path.display(),
                    in_groups.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
                    names.join(", "),
                    outside.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
                ));
            }
        }
        out
    }

    /// Cross-checks against the catalog: approver roles exist, granted command names exist.
    pub fn check_catalog(&self, catalog: &Catalog) -> Result<(), ConfigError> {
        for cmd in catalog.iter() {
            if let Some(a) = &cmd.approval {
                for r in &a.approvers {
                    if !self.roles.contains_key(r) {
                        return Err(ConfigError {
                            path: cmd.source.clone(),
                            line: Some(a.line),
                            message: format!(
                                "approver role `{r}` is not defined in any permissions file"
                            ),
                        });
                    }
                }
            }
        }
        for g in &self.grants {
            for (name, path, line) in &g.literal_commands {
                if catalog.get(name).is_none() {
                    return Err(ConfigError {
                        path: path.clone(),
                        line: Some(*line),
                        message: format!(
                            "grant names command `/{name}`, which is not in the catalog"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// The roles of a person: by user id, and by the chat platform's role ids they carry.
    pub fn roles_of(&self, user: &UserId, platform_roles: &[String]) -> BTreeSet<RoleId> {
        self.roles
            .iter()
            .filter(|(_, d)| {
                d.users.contains(user) || platform_roles.iter().any(|r| d.discord_roles.contains(r))
            })
            .map(|(r, _)| r.clone())
            .collect()
    }

    fn grants_for<'a>(
        &'a self,
        roles: &'a BTreeSet<RoleId>,
        command: &'a str,
        channel: &'a ChannelId,
    ) -> impl Iterator<Item = &'a Grant> + 'a {
        self.grants.iter().filter(move |g| {
            !g.roles.is_disjoint(roles)
                && g.commands.is_match(command)
                && g.channels.is_match(channel.as_str())
        })
    }

    /// Does `user` still hold `role`: it exists and lists the user, or it is bound to chat
    /// roles (which only the chat platform can confirm at the moment of a click)?
    pub fn still_holds(&self, user: &UserId, role: &RoleId) -> bool {
        self.roles
            .get(role)
            .is_some_and(|d| d.users.contains(user) || !d.discord_roles.is_empty())
    }

    /// Do these roles reach the command on every one of these services, through grants in
    /// any channel? (The channel was checked when the request was made.)
    pub fn may_run_somewhere(
        &self,
        roles: &BTreeSet<RoleId>,
        command: &str,
        services: &[ServiceName],
    ) -> bool {
        let grants: Vec<&Grant> = self
            .grants
            .iter()
            .filter(|g| !g.roles.is_disjoint(roles) && g.commands.is_match(command))
            .collect();
        !grants.is_empty()
            && services
                .iter()
                .all(|s| grants.iter().any(|g| g.services.is_match(s.as_str())))
    }

    /// May these roles run the command in this channel at all (on some service)?
    pub fn may_run(&self, roles: &BTreeSet<RoleId>, command: &str, channel: &ChannelId) -> bool {
        self.grants_for(roles, command, channel).next().is_some()
    }

    /// May these roles run the command in this channel on this service?
    pub fn may_run_on(
        &self,
        roles: &BTreeSet<RoleId>,
        command: &str,
        channel: &ChannelId,
        service: &ServiceName,
    ) -> bool {
        self.grants_for(roles, command, channel)
            .any(|g| g.services.is_match(service.as_str()))
    }

    /// Does any grant of the command reach a person (a role with users or Discord roles)?
    /// Chat menus hide commands nobody may run unless the catalog asks otherwise.
    pub fn is_granted(&self, command: &str) -> bool {
        let held = |r: &RoleId| {
            self.roles
                .get(r)
                .is_some_and(|d| !d.users.is_empty() || !d.discord_roles.is_empty())
        };
        self.grants
            .iter()
            .any(|g| g.commands.is_match(command) && g.roles.iter().any(held))
    }

    pub fn role_names(&self) -> impl Iterator<Item = &RoleId> {
        self.roles.keys()
    }
}

fn globs(
    path: &Path,
    text: &str,
    patterns: &[Spanned<String>],
    strip_slash: bool,
) -> Result<GlobSet, ConfigError> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let pat = if strip_slash {
            p.get_ref().trim_start_matches('/')
        } else {
            p.get_ref().as_str()
        };
        let g = Glob::new(pat).map_err(|e| {
            ConfigError::at(
                path,
                text,
                Some(p.span()),
                format!("bad glob `{pat}`: {}", e.kind()),
            )
        })?;
        b.add(g);
    }
    b.build()
        .map_err(|e| ConfigError::new(path, format!("globs: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::catalog::Catalog;
    use crate::core::types::GroupName;

    fn repo(p: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
    }
    fn team() -> Policy {
        Policy::load_dir(&repo("permissions")).unwrap()
    }
    fn u(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }
    fn ch(s: &str) -> ChannelId {
        ChannelId::parse(s).unwrap()
    }
    fn svc(s: &str) -> ServiceName {
        ServiceName::parse(s).unwrap()
    }
    fn roles(p: &Policy, user: &str) -> BTreeSet<RoleId> {
        p.roles_of(&u(user), &[])
    }

    #[test]
    fn team_file_maps_people_to_roles() {
        let p = team();
        let names = |s: BTreeSet<RoleId>| s.into_iter().map(String::from).collect::<Vec<_>>();
        assert_eq!(names(roles(&p, "alice")), ["operator", "viewer"]);
        assert_eq!(names(roles(&p, "bob")), ["approver", "operator", "viewer"]);
        assert_eq!(names(roles(&p, "erin")), ["admin", "approver"]);
        assert!(roles(&p, "mallory").is_empty());
    }

    #[test]
    fn deny_by_default_for_unknown_people_and_ungranted_commands() {
        let p = team();
        let console = ch("console");
        assert!(!p.may_run(&roles(&p, "mallory"), "status", &console));
        assert!(!p.may_run(&roles(&p, "dave"), "restart", &console));
        assert!(p.may_run(&roles(&p, "dave"), "status", &console));
        assert!(!p.may_run(&BTreeSet::new(), "help", &console));
    }

    #[test]
    fn operators_restart_app_services_but_not_infra() {
        let p = team();
        let alice = roles(&p, "alice");
        let console = ch("console");
        assert!(p.may_run_on(&alice, "restart", &console, &svc("api-1")));
        assert!(p.may_run_on(&alice, "restart", &console, &svc("worker-2")));
        assert!(!p.may_run_on(&alice, "restart", &console, &svc("postgres")));
        let erin = roles(&p, "erin");
        assert!(p.may_run_on(&erin, "restart", &console, &svc("postgres")));
    }

    #[test]
    fn discord_roles_grant_bot_roles() {
        let files = vec![(PathBuf::from("p.toml"), "[roles.viewer]\ndiscord_roles = [\"111\"]\n[[grants]]\nroles = [\"viewer\"]\ncommands = [\"status\"]\nchannels = [\"222\"]\n".to_owned())];
        let p = Policy::parse_files(&files).unwrap();
        let r = p.roles_of(&u("999"), &["111".into()]);
        assert!(p.may_run(&r, "status", &ch("222")));
        assert!(
            !p.may_run(&r, "status", &ch("333")),
            "channel glob must restrict"
        );
    }

    #[test]
    fn a_command_is_granted_only_when_a_grant_reaches_someone() {
        let files = vec![(PathBuf::from("p.toml"), "[roles.viewer]\nusers = [\"a\"]\n[roles.empty]\n[roles.ops]\ndiscord_roles = [\"7\"]\n[[grants]]\nroles = [\"viewer\"]\ncommands = [\"status\", \"log*\"]\n[[grants]]\nroles = [\"empty\"]\ncommands = [\"reset\"]\n[[grants]]\nroles = [\"ops\"]\ncommands = [\"restart\"]\n".to_owned())];
        let p = Policy::parse_files(&files).unwrap();
        assert!(p.is_granted("status"));
        assert!(p.is_granted("logs"), "globs count");
        assert!(p.is_granted("restart"), "a Discord role is someone");
        assert!(!p.is_granted("reset"), "a role nobody holds reaches nobody");
        assert!(!p.is_granted("flush-redis"), "never granted");
        let t = team();
        assert!(t.is_granted("flush-redis") && t.is_granted("incident"));
    }

    #[test]
    fn grant_with_undefined_role_names_the_file_and_line() {
        let e = Policy::load_dir(&repo("tests/fixtures/permissions-undefined-role")).unwrap_err();
        assert!(e.path.ends_with("ops.toml"), "{e}");
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.message.contains("sre"), "{e}");
    }

    #[test]
    fn bad_glob_names_the_file_and_line() {
        let e = Policy::load_dir(&repo("tests/fixtures/permissions-bad-glob")).unwrap_err();
        assert!(e.path.ends_with("team.toml"), "{e}");
        assert_eq!(e.line, Some(7), "{e}");
    }

    #[test]
    fn unknown_field_in_a_role_is_refused() {
        let files = vec![(
            PathBuf::from("p.toml"),
            "[roles.viewer]\nmembers = [\"a\"]\n".to_owned(),
        )];
        let e = Policy::parse_files(&files).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn approver_role_missing_from_permissions_is_refused_naming_the_command_file() {
        let files = vec![(
            PathBuf::from("p.toml"),
            "[roles.viewer]\nusers = [\"a\"]\n".to_owned(),
        )];
        let p = Policy::parse_files(&files).unwrap();
        let groups: BTreeSet<GroupName> = ["app", "infra"]
            .iter()
            .map(|g| GroupName::parse(g).unwrap())
            .collect();
        let c = Catalog::load_dir(&repo("commands"), &groups).unwrap();
        let e = p.check_catalog(&c).unwrap_err();
        assert!(e.path.ends_with("backup.toml"), "{e}");
        assert_eq!(e.line, Some(8), "{e}");
    }

    #[test]
    fn granting_a_command_that_does_not_exist_is_refused() {
        let files = vec![(PathBuf::from("p.toml"), "[roles.approver]\nusers = [\"a\"]\n[[grants]]\nroles = [\"approver\"]\ncommands = [\"reboot\"]\n".to_owned())];
        let p = Policy::parse_files(&files).unwrap();
        let groups: BTreeSet<GroupName> = ["app", "infra"]
            .iter()
            .map(|g| GroupName::parse(g).unwrap())
            .collect();
        let c = Catalog::load_dir(&repo("commands"), &groups).unwrap();
        let e = p.check_catalog(&c).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("/reboot"), "{e}");
    }
}
