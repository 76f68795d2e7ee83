//! Slash command definitions generated from the catalog: option types, choices, bounds and autocomplete.

use std::collections::BTreeMap;

use serenity::all::{
    CommandOptionType, CreateCommand, CreateCommandOption, InstallationContext, InteractionContext,
};

use crate::core::catalog::{Autocomplete, Catalog, Command, OptionSpec, OptionType};
use crate::core::policy::Policy;
use crate::core::types::{GroupName, ServiceName};

/// Discord's limits on command definitions (application commands documentation).
const DESCRIPTION: usize = 100;
const CHOICES: usize = 25;
const OPTIONS: usize = 25;
const COMMANDS: usize = 100;
const NAME: usize = 32;
const CHOICE_TEXT: usize = 100;
/// Name, description and option/choice names, descriptions and values of one command.
const COMMAND_CHARS: usize = 8000;

/// Discord refuses descriptions over 100 characters; a longer catalog text is shortened
/// visibly (with an ellipsis) and the full text stays in `/help`.
fn description(s: &str) -> String {
    let s = s.trim();
    let s = if s.is_empty() { "-" } else { s };
    if s.chars().count() <= DESCRIPTION {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(DESCRIPTION - 1).collect();
    cut.push('…');
    cut
}

/// The Discord option for one catalog option. Services autocomplete from the live project;
/// groups are fixed choices from the settings (up to Discord's 25), else autocomplete.
fn option(o: &OptionSpec, groups: &BTreeMap<GroupName, Vec<ServiceName>>) -> CreateCommandOption {
    let kind = match o.kind {
        OptionType::Integer => CommandOptionType::Integer,
        OptionType::Boolean => CommandOptionType::Boolean,
        OptionType::String | OptionType::Service | OptionType::Group | OptionType::Duration => {
            CommandOptionType::String
        }
    };
    let mut d = description(&o.description);
    if o.multiple && o.kind == OptionType::Service {
        // Discord has no multi-value options; the core accepts a comma-separated list.
        let hint = " (comma-separated)";
        if d.chars().count() + hint.chars().count() <= DESCRIPTION {
            d.push_str(hint);
        }
    }
    let mut opt = CreateCommandOption::new(kind, &o.name, d).required(o.required);
    if let Some(max) = o.max_length {
        opt = opt.max_length(u16::try_from(max.clamp(1, 6000)).unwrap_or(6000));
    }
    if let Some(min) = o.min {
        opt = opt.min_int_value(u64::try_from(min).unwrap_or(0));
    }
    if let Some(max) = o.max.and_then(|m| u64::try_from(m).ok()) {
        opt = opt.max_int_value(max);
    }
    let fixed: Vec<String> = if !o.choices.is_empty() {
        o.choices.clone()
    } else if o.kind == OptionType::Group {
        groups.keys().map(|g| g.to_string()).collect()
    } else {
        Vec::new()
    };
    if !fixed.is_empty() && fixed.len() <= CHOICES {
        for c in fixed {
            opt = match (o.kind, c.parse::<i32>()) {
                (OptionType::Integer, Ok(n)) => opt.add_int_choice(&c, n),
                _ => opt.add_string_choice(&c, &c),
            };
        }
    } else if o.autocomplete.is_some() || !fixed.is_empty() {
        opt = opt.set_autocomplete(true);
    }
    opt
}

/// Where commands may be used: the team's server, and the bot's DMs only when allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Places {
    pub dms: bool,
}

/// One command; required options first, as Discord demands. Installed to servers only, usable
/// in servers (and the bot's DMs when allowed). `default_member_permissions` stays unset
/// (everyone sees the menu; who may *run* a command is the policy's decision): serenity 0.12
/// sends it as a string, which Discord's published schema (integer) refuses.
pub fn command(
    c: &Command,
    groups: &BTreeMap<GroupName, Vec<ServiceName>>,
    places: Places,
) -> CreateCommand {
    let mut opts: Vec<&OptionSpec> = c.options.iter().collect();
    opts.sort_by_key(|o| !o.required);
    let mut contexts = vec![InteractionContext::Guild];
    if places.dms {
        contexts.push(InteractionContext::BotDm);
    }
    CreateCommand::new(c.name.as_str())
        .description(description(&c.description))
        .set_options(opts.into_iter().map(|o| option(o, groups)).collect())
        .integration_types(vec![InstallationContext::Guild])
        .contexts(contexts)
}

/// Every command of the catalog, in name order.
pub fn all(
    catalog: &Catalog,
    groups: &BTreeMap<GroupName, Vec<ServiceName>>,
    places: Places,
) -> Vec<CreateCommand> {
    catalog.iter().map(|c| command(c, groups, places)).collect()
}

/// What Discord would refuse in these definitions (it refuses the whole registration, code
/// 50035, so not one command would be published). Checked on the JSON serenity sends.
pub fn limit_problems(defs: &[CreateCommand]) -> Vec<String> {
    let mut out = Vec::new();
    if defs.len() > COMMANDS {
        out.push(format!(
            "{} commands: Discord takes at most {COMMANDS}",
            defs.len()
        ));
    }
    for d in defs {
        let v = serde_json::to_value(d).unwrap_or_default();
        let cmd = v["name"].as_str().unwrap_or("").to_owned();
        let mut p = |what: String| out.push(format!("/{cmd}: {what}"));
        let chars = |v: &serde_json::Value| v.as_str().map_or(0, |s| s.chars().count());
        let mut total = chars(&v["name"]) + chars(&v["description"]);
        check_name(&v["name"], "the command name", &mut p);
        let opts = v["options"].as_array().cloned().unwrap_or_default();
        if opts.len() > OPTIONS {
            p(format!(
                "{} options: Discord takes at most {OPTIONS}",
                opts.len()
            ));
        }
        let mut optional_seen = false;
        for o in &opts {
            let name = o["name"].as_str().unwrap_or("");
            check_name(&o["name"], &format!("option `{name}`"), &mut p);
            total += chars(&o["name"]) + chars(&o["description"]);
            let required = o["required"].as_bool().unwrap_or(false);
            if required && optional_seen {
                p(format!("option `{name}` is required after an optional one"));
            }
            optional_seen |= !required;
            let choices = o["choices"].as_array().cloned().unwrap_or_default();
            if choices.len() > CHOICES {
                p(format!(
                    "option `{name}` has {} choices: Discord takes at most {CHOICES}",
                    choices.len()
                ));
            }
            if !choices.is_empty() && o["autocomplete"].as_bool() == Some(true) {
                p(format!("option `{name}` has both choices and autocomplete"));
            }
            let integer =
                o["type"].as_u64() == Some(u64::from(u8::from(CommandOptionType::Integer)));
            for c in &choices {
                let shown = chars(&c["name"]);
                total += shown + c["value"].as_str().map_or(0, |s| s.chars().count());
                if !(1..=CHOICE_TEXT).contains(&shown) {
                    p(format!(
                        "a choice of `{name}` has a name of {shown} characters (1 to {CHOICE_TEXT})"
                    ));
                }
                match &c["value"] {
                    serde_json::Value::String(s) if integer => p(format!(
                        "choice `{s}` of integer option `{name}` is not an integer Discord takes (whole numbers within ±2147483647 here)"
                    )),
                    serde_json::Value::String(s) if s.chars().count() > CHOICE_TEXT => p(format!(
                        "choice of `{name}` is longer than {CHOICE_TEXT} characters"
                    )),
                    _ => {}
                }
            }
        }
        if total > COMMAND_CHARS {
            p(format!(
                "{total} characters in names, descriptions and choices: Discord takes at most {COMMAND_CHARS}"
            ));
        }
    }
    out
}

/// Discord's rule for command and option names: 1–32 characters, lower case letters, digits,
/// `-` and `_`.
fn check_name(v: &serde_json::Value, what: &str, p: &mut impl FnMut(String)) {
    let name = v.as_str().unwrap_or("");
    let n = name.chars().count();
    let ok = (1..=NAME).contains(&n)
        && name.chars().all(|c| {
            c == '-' || c == '_' || c.is_numeric() || (c.is_alphabetic() && !c.is_uppercase())
        });
    if !ok {
        p(format!(
            "{what} `{name}` is not a Discord name (1 to {NAME} lower-case letters, digits, `-`, `_`)"
        ));
    }
}

/// What Discord's menu lists: every command some grant reaches, plus the ungranted ones whose
/// file says `show_when_ungranted = true`. The core still decides every run.
pub fn published(
    catalog: &Catalog,
    policy: &Policy,
    groups: &BTreeMap<GroupName, Vec<ServiceName>>,
    places: Places,
) -> Vec<CreateCommand> {
    catalog
        .iter()
        .filter(|c| c.show_when_ungranted || policy.is_granted(c.name.as_str()))
        .map(|c| command(c, groups, places))
        .collect()
}

/// Where an option's suggestions come from (explicit in the catalog, or implied by its type).
pub fn autocomplete_source(o: &OptionSpec) -> Option<Autocomplete> {
    o.autocomplete.or(match o.kind {
        OptionType::Service => Some(Autocomplete::Services),
        OptionType::Group => Some(Autocomplete::Groups),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_descriptions_are_shortened_visibly_to_discords_limit() {
        let d = description(&"word ".repeat(40));
        assert_eq!(d.chars().count(), 100);
        assert!(d.ends_with('…'));
        assert_eq!(description("  "), "-");
    }

    #[test]
    fn every_catalog_command_becomes_a_definition_with_its_options() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("commands");
        let settings = crate::core::settings::Settings::parse(
            std::path::Path::new("default"),
            crate::core::settings::DEFAULT_SETTINGS,
        )
        .unwrap();
        let groups = settings.groups.keys().cloned().collect();
        let catalog = Catalog::load_dir(&dir, &groups).unwrap();
        let defs = all(&catalog, &settings.groups, Places { dms: false });
        assert_eq!(defs.len(), catalog.len());
        assert_eq!(limit_problems(&defs), Vec::<String>::new());
        let logs = serde_json::to_value(command(
            catalog.get("logs").unwrap(),
            &settings.groups,
            Places { dms: false },
        ))
        .unwrap();
        assert_eq!(logs["contexts"], serde_json::json!([0]));
        assert_eq!(logs["integration_types"], serde_json::json!([0]));
        assert_eq!(logs["name"], "logs");
        let opts = logs["options"].as_array().unwrap();
        assert_eq!(opts[0]["name"], "service");
        assert_eq!(opts[0]["required"], true);
        assert_eq!(opts[0]["autocomplete"], true);
        let tail = opts.iter().find(|o| o["name"] == "tail").unwrap();
        assert_eq!(tail["type"], 4);
        assert_eq!(tail["max_value"], 2000);
        let ts = opts.iter().find(|o| o["name"] == "timestamps").unwrap();
        assert_eq!(ts["type"], 5);
    }

    fn int_option(name: &str) -> CreateCommandOption {
        CreateCommandOption::new(CommandOptionType::Integer, name, "n")
    }

    #[test]
    fn what_discord_would_refuse_in_a_registration_is_named() {
        let ok = CreateCommand::new("status").description("d");
        assert!(limit_problems(std::slice::from_ref(&ok)).is_empty());

        let many: Vec<CreateCommand> = (0..101)
            .map(|i| CreateCommand::new(format!("c{i}")).description("d"))
            .collect();
        assert!(limit_problems(&many)[0].contains("101 commands"));

        let bad = [
            CreateCommand::new("Status").description("d"),
            CreateCommand::new("x")
                .description("d")
                .set_options((0..26).map(|i| int_option(&format!("o{i}"))).collect()),
            CreateCommand::new("y").description("d").set_options(vec![
                int_option("later"),
                int_option("first").required(true),
            ]),
            CreateCommand::new("z").description("d").set_options(vec![
                int_option("n").add_string_choice("3000000000", "3000000000"),
            ]),
            CreateCommand::new("w").description("d").set_options(vec![
                CreateCommandOption::new(CommandOptionType::String, "s", "d")
                    .add_string_choice("a", "a")
                    .set_autocomplete(true),
            ]),
            CreateCommand::new("v").description("d").set_options(
                (0..20)
                    .map(|i| {
                        (0..25).fold(
                            CreateCommandOption::new(
                                CommandOptionType::String,
                                format!("o{i}"),
                                "d",
                            ),
                            |o, j| o.add_string_choice(format!("{j:0>20}"), format!("{j:0>20}")),
                        )
                    })
                    .collect(),
            ),
        ];
        let problems = limit_problems(&bad).join("\n");
        for expected in [
            "/Status: the command name `Status` is not a Discord name",
            "/x: 26 options",
            "/y: option `first` is required after an optional one",
            "/z: choice `3000000000` of integer option `n` is not an integer",
            "/w: option `s` has both choices and autocomplete",
            "/v: 20072 characters in names, descriptions and choices",
        ] {
            assert!(
                problems.contains(expected),
                "{expected} not in:\n{problems}"
            );
        }
    }

    #[test]
    fn an_integer_choice_beyond_i32_in_the_catalog_is_refused_and_more_than_25_choices_autocomplete()
     {
        let mut o = OptionSpec {
            name: "n".into(),
            description: "d".into(),
            kind: OptionType::Integer,
            required: false,
            multiple: false,
            choices: vec!["1".into(), "3000000000".into()],
            autocomplete: None,
            max_length: None,
            min: None,
            max: None,
        };
        let groups = BTreeMap::new();
        let c = CreateCommand::new("q")
            .description("d")
            .set_options(vec![option(&o, &groups)]);
        assert!(limit_problems(&[c])[0].contains("3000000000"));
        o.kind = OptionType::String;
        o.choices = (0..30).map(|i| format!("c{i}")).collect();
        let v = serde_json::to_value(option(&o, &groups)).unwrap();
        assert_eq!(v["autocomplete"], true);
        assert!(
            v.get("choices")
                .is_none_or(|c| c.as_array().is_none_or(Vec::is_empty))
        );
    }
}
