//! Slash command definitions generated from the catalog: option types, choices, bounds and autocomplete.

use std::collections::BTreeMap;

use serenity::all::{CommandOptionType, CreateCommand, CreateCommandOption};

use crate::core::catalog::{Autocomplete, Catalog, Command, OptionSpec, OptionType};
use crate::core::policy::Policy;
use crate::core::types::{GroupName, ServiceName};

/// Discord's limits on command definitions.
const DESCRIPTION: usize = 100;
const CHOICES: usize = 25;

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

/// One command; required options first, as Discord demands.
pub fn command(c: &Command, groups: &BTreeMap<GroupName, Vec<ServiceName>>) -> CreateCommand {
    let mut opts: Vec<&OptionSpec> = c.options.iter().collect();
    opts.sort_by_key(|o| !o.required);
    CreateCommand::new(c.name.as_str())
        .description(description(&c.description))
        .set_options(opts.into_iter().map(|o| option(o, groups)).collect())
}

/// Every command of the catalog, in name order.
pub fn all(
    catalog: &Catalog,
    groups: &BTreeMap<GroupName, Vec<ServiceName>>,
) -> Vec<CreateCommand> {
    catalog.iter().map(|c| command(c, groups)).collect()
}

/// What Discord's menu lists: every command some grant reaches, plus the ungranted ones whose
/// file says `show_when_ungranted = true`. The core still decides every run.
pub fn published(
    catalog: &Catalog,
    policy: &Policy,
    groups: &BTreeMap<GroupName, Vec<ServiceName>>,
) -> Vec<CreateCommand> {
    catalog
        .iter()
        .filter(|c| c.show_when_ungranted || policy.is_granted(c.name.as_str()))
        .map(|c| command(c, groups))
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
        let defs = all(&catalog, &settings.groups);
        assert_eq!(defs.len(), catalog.len());
        let logs =
            serde_json::to_value(command(catalog.get("logs").unwrap(), &settings.groups)).unwrap();
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
}
